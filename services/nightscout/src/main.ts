import { AlertRules } from "@dexmon/alerting"
import { NightscoutApi } from "@dexmon/api"
import { ReadingsQuery } from "@dexmon/archive"
import { EventIds, HotRetention } from "@dexmon/domain"
import {
  AlertSettingsStoreLive,
  ArchiveLedgerLive,
  ArchiveStoreLive,
  EventLogLive,
  HealthHttp,
  layerHttpServer,
  NightscoutCredentialStoreLive,
  NightscoutDeviceStatusStoreLive,
  Readiness,
  runService,
  SensorOwnershipLive
} from "@dexmon/platform"
import { Layer } from "effect"
import { NightscoutHttp } from "./NightscoutHttp.ts"

/**
 * The Nightscout API alone, for Nightscout's uploaders and followers: entries into the event log through the
 * receiver's ingestion (sensor owners, alert-settings versions and credentials in PostgreSQL), entries read hot
 * and archived, the status with the user's thresholds. One base URL serves both, as the tools expect.
 */
runService(
  "nightscout",
  layerHttpServer(NightscoutApi, Layer.mergeAll(NightscoutHttp, HealthHttp)).pipe(
    Layer.provide(Readiness.layer),
    Layer.provideMerge(ReadingsQuery.layer),
    Layer.provide(
      Layer.mergeAll(
        ArchiveLedgerLive,
        ArchiveStoreLive,
        AlertSettingsStoreLive,
        SensorOwnershipLive,
        EventLogLive,
        NightscoutCredentialStoreLive,
        NightscoutDeviceStatusStoreLive,
        EventIds.layer,
        HotRetention.layerConfig,
        AlertRules.layerConfig
      )
    )
  )
)
