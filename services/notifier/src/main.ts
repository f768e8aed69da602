import { AlertRules } from "@dexmon/alerting"
import { HealthApi } from "@dexmon/api"
import {
  AlertStateStoreLive,
  AlertStoreLive,
  EventLogLive,
  HealthHttp,
  layerHttpServer,
  Readiness,
  runService
} from "@dexmon/platform"
import { Layer } from "effect"
import { NotifierLive } from "./Notifier.ts"

/** The notifier alone, with `/healthz` and `/readyz` for probes. */
runService(
  "notifier",
  Layer.mergeAll(NotifierLive, layerHttpServer(HealthApi, HealthHttp).pipe(Layer.provide(Readiness.layer))).pipe(
    Layer.provide(Layer.mergeAll(EventLogLive, AlertStoreLive, AlertStateStoreLive, AlertRules.layerConfig))
  )
)
