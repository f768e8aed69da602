import { AlertRules } from "@dexmon/alerting"
import { HealthApi } from "@dexmon/api"
import {
  AlertSettingsStoreLive,
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

/** The notifier alone, with `/healthz` and `/readyz` for probes; the owners' alert settings come from PostgreSQL. */
runService(
  "notifier",
  Layer.mergeAll(NotifierLive, layerHttpServer(HealthApi, HealthHttp).pipe(Layer.provide(Readiness.layer))).pipe(
    Layer.provide(
      Layer.mergeAll(EventLogLive, AlertStoreLive, AlertStateStoreLive, AlertSettingsStoreLive, AlertRules.layerConfig)
    )
  )
)
