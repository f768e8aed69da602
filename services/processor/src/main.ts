import { HealthApi } from "@dexmon/api"
import { EventLogLive, HealthHttp, layerHttpServer, Readiness, ReadingStoreLive, runService } from "@dexmon/platform"
import { Layer } from "effect"
import { ProcessorLive } from "./Processor.ts"

/** The processor alone, with `/healthz` and `/readyz` for probes. */
runService(
  "processor",
  Layer.mergeAll(ProcessorLive, layerHttpServer(HealthApi, HealthHttp).pipe(Layer.provide(Readiness.layer))).pipe(
    Layer.provide(Layer.mergeAll(EventLogLive, ReadingStoreLive))
  )
)
