import type { AlertView, DeliveryStatus, ServiceUnavailable } from "@dexmon/api"
import { type Alert, type UserId, type Webhook, webhookTakes } from "@dexmon/domain"
import { DeliveryOutbox, WebhookStore } from "@dexmon/ports"
import { Context, Effect, Layer } from "effect"
import { unavailable } from "./Unavailable.ts"

/**
 * An alert's delivery status, from its deliveries in the outbox and the
 * user's endpoints: `SENT` once one delivery succeeded, `PENDING` while one is
 * queued or retried (or the notification is decided and an endpoint will get
 * it), `FAILED` once all were given up, `NONE` when no endpoint registered
 * before its last notification takes its kind, or it was never told.
 */
export const deliveryStatusOf = (
  alert: Alert,
  counts: { readonly pending: number; readonly delivered: number; readonly failed: number } | undefined,
  endpoints: ReadonlyArray<Webhook>
): DeliveryStatus => {
  if (counts !== undefined && counts.delivered > 0) return "SENT"
  if (counts !== undefined && counts.pending > 0) return "PENDING"
  if (counts !== undefined && counts.failed > 0) return "FAILED"
  if (alert.notification_count === 0 || alert.last_notified_at === null) return "NONE"
  const told = alert.last_notified_at
  const takers = endpoints.filter((webhook) => webhookTakes(webhook, alert.alert_type) && webhook.created_at <= told)
  return takers.length > 0 ? "PENDING" : "NONE"
}

/**
 * Adds each alert's delivery status as the API serves it: computed when read
 * (one query to the outbox and one to the endpoints per request), so the
 * alert rows the notifier writes and the deliveries the deliverer records
 * never race over one field.
 */
export class DeliveryStatuses extends Context.Service<
  DeliveryStatuses,
  {
    readonly of: (
      userId: UserId,
      alerts: ReadonlyArray<Alert>
    ) => Effect.Effect<ReadonlyArray<AlertView>, ServiceUnavailable>
  }
>()("dexmon/gateway/DeliveryStatuses") {
  static readonly layer = Layer.effect(
    DeliveryStatuses,
    Effect.gen(function* () {
      const outbox = yield* DeliveryOutbox
      const webhooks = yield* WebhookStore
      const of = Effect.fn("DeliveryStatuses.of")(function* (userId: UserId, alerts: ReadonlyArray<Alert>) {
        if (alerts.length === 0) return []
        const [counts, endpoints] = yield* Effect.all(
          [
            outbox
              .statusOf(alerts.map((alert) => alert.alert_id))
              .pipe(Effect.catchTag("DeliveryOutboxError", unavailable("the delivery outbox"))),
            webhooks.list(userId).pipe(Effect.catchTag("WebhookStoreError", unavailable("the webhook store")))
          ],
          { concurrency: 2 }
        )
        return alerts.map(
          (alert): AlertView => ({
            ...alert,
            delivery_status: deliveryStatusOf(alert, counts.get(alert.alert_id), endpoints)
          })
        )
      })
      return DeliveryStatuses.of({ of })
    })
  )
}
