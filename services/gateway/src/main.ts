import { GatewayApi } from "@dexmon/api"
import { ReadingsQuery } from "@dexmon/archive"
import {
  AlertStoreLive,
  ArchiveLedgerLive,
  ArchiveStoreLive,
  HealthHttp,
  layerHttpServer,
  Readiness,
  runService
} from "@dexmon/platform"
import { Layer } from "effect"
import { GatewayHttp } from "./GatewayHttp.ts"

/** The gateway alone: `GET /api/v1/readings` (hot and archived) and `/api/v1/alerts` (a range, `/active`, one by id). */
runService(
  "gateway",
  layerHttpServer(GatewayApi, Layer.mergeAll(GatewayHttp, HealthHttp)).pipe(
    Layer.provide(Readiness.layer),
    Layer.provideMerge(ReadingsQuery.layer),
    Layer.provide(Layer.mergeAll(ArchiveLedgerLive, ArchiveStoreLive, AlertStoreLive))
  )
)
