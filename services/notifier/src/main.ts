import { HealthApi } from "@dexmon/api"
import { AlertThresholds } from "@dexmon/domain"
import {
  AlertStoreLive,
  EventLogLive,
  HealthHttp,
  layerHttpServer,
  Readiness,
  runService,
  SqlClientLive
} from "@dexmon/platform"
import { Layer } from "effect"
import { NotifierLive } from "./Notifier.ts"

/** The notifier alone, with `/healthz` and `/readyz` for probes. */
runService(
  "notifier",
  Layer.mergeAll(NotifierLive, layerHttpServer(HealthApi, HealthHttp)).pipe(
    Layer.provide(Layer.mergeAll(EventLogLive, AlertStoreLive, Readiness.layerSql, AlertThresholds.layerConfig)),
    Layer.provide(SqlClientLive)
  )
)
