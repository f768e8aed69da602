import { AlertRules } from "@dexmon/alerting"
import { GatewayApi } from "@dexmon/api"
import { ReadingsQuery } from "@dexmon/archive"
import { EventIds } from "@dexmon/domain"
import {
  AlertSettingsStoreLive,
  AlertStoreLive,
  ArchiveLedgerLive,
  ArchiveStoreLive,
  DeliveryOutboxLive,
  EventLogLive,
  HealthHttp,
  layerHttpServer,
  NightscoutCredentialStoreLive,
  Readiness,
  runService,
  SensorOwnershipLive,
  WebhookStoreLive
} from "@dexmon/platform"
import { Layer } from "effect"
import { GatewayHttp } from "./GatewayHttp.ts"

/**
 * The gateway alone: `GET /api/v1/readings` (hot and archived) and
 * `/api/v1/alerts` (a range, `/active`, one by id); the owner's controls
 * (acknowledge, snooze, sensor stop), appended to the event log; and the
 * owner's alert settings, webhook endpoints, Nightscout credentials and sensor releases in PostgreSQL.
 */
runService(
  "gateway",
  layerHttpServer(GatewayApi, Layer.mergeAll(GatewayHttp, HealthHttp)).pipe(
    Layer.provide(Readiness.layer),
    Layer.provideMerge(ReadingsQuery.layer),
    Layer.provide(
      Layer.mergeAll(
        ArchiveLedgerLive,
        ArchiveStoreLive,
        AlertStoreLive,
        AlertSettingsStoreLive,
        SensorOwnershipLive,
        EventLogLive,
        WebhookStoreLive,
        NightscoutCredentialStoreLive,
        DeliveryOutboxLive,
        EventIds.layer,
        AlertRules.layerConfig
      )
    )
  )
)
