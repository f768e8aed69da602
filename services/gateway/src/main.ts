import { GatewayApi } from "@dexmon/api"
import { AlertStoreLive, HealthHttp, layerHttpServer, Readiness, ReadingStoreLive, runService } from "@dexmon/platform"
import { Layer } from "effect"
import { GatewayHttp } from "./GatewayHttp.ts"

/** The gateway alone: `GET /api/v1/readings` and `/api/v1/alerts`. */
runService(
  "gateway",
  layerHttpServer(GatewayApi, Layer.mergeAll(GatewayHttp, HealthHttp)).pipe(
    Layer.provide(Readiness.layer),
    Layer.provide(Layer.mergeAll(ReadingStoreLive, AlertStoreLive))
  )
)
