import { ReceiverApi } from "@dexmon/api"
import { EventIds, HotRetention } from "@dexmon/domain"
import {
  AlertSettingsStoreLive,
  EventLogLive,
  HealthHttp,
  layerHttpServer,
  Readiness,
  runService,
  SensorOwnershipLive
} from "@dexmon/platform"
import { Layer } from "effect"
import { IngestionHttp } from "./IngestionHttp.ts"

/**
 * The receiver alone: `POST /api/v1/glucose/*` into the event log, with sensor
 * owners and the owners' alert-settings versions in PostgreSQL.
 */
runService(
  "receiver",
  layerHttpServer(ReceiverApi, Layer.mergeAll(IngestionHttp, HealthHttp)).pipe(
    Layer.provide(Readiness.layer),
    Layer.provide(
      Layer.mergeAll(
        EventLogLive,
        SensorOwnershipLive,
        AlertSettingsStoreLive,
        EventIds.layer,
        HotRetention.layerConfig
      )
    )
  )
)
