import { HealthApi } from "@dexmon/api"
import {
  DeliveryOutboxLive,
  EventLogLive,
  HealthHttp,
  layerHttpServer,
  Readiness,
  runService,
  WebhookStoreLive
} from "@dexmon/platform"
import { Layer } from "effect"
import { DelivererLive } from "./Deliverer.ts"
import { WebhookSender } from "./WebhookSender.ts"

/** The deliverer alone: `glucose.alerts` to the users' webhooks, with the outbox in PostgreSQL; `/healthz`, `/readyz`. */
runService(
  "deliverer",
  Layer.mergeAll(DelivererLive, layerHttpServer(HealthApi, HealthHttp).pipe(Layer.provide(Readiness.layer))).pipe(
    Layer.provide(Layer.mergeAll(EventLogLive, WebhookStoreLive, DeliveryOutboxLive, WebhookSender.layerConfig))
  )
)
