import { ReceiverApi } from "@dexmon/api"
import { EventIds, HotRetention } from "@dexmon/domain"
import { EventLogLive, HealthHttp, layerHttpServer, Readiness, runService, SqlClientLive } from "@dexmon/platform"
import { Layer } from "effect"
import { IngestionHttp } from "./IngestionHttp.ts"

/** The receiver alone: `POST /api/v1/glucose/*` into the event log. */
runService(
  "receiver",
  layerHttpServer(ReceiverApi, Layer.mergeAll(IngestionHttp, HealthHttp)).pipe(
    Layer.provide(Layer.mergeAll(EventLogLive, Readiness.layerSql, EventIds.layer, HotRetention.layerConfig)),
    Layer.provide(SqlClientLive)
  )
)
