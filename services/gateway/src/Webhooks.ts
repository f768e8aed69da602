import { randomBytes, randomUUID } from "node:crypto"
import { lookup } from "node:dns/promises"
import { NotFound, type ServiceUnavailable, ValidationError } from "@dexmon/api"
import {
  type AlertType,
  checkWebhookUrl,
  deliveryId,
  formatIsoTimestamp,
  isPublicAddress,
  type UserId,
  type Webhook,
  WebhookId,
  type WebhookView
} from "@dexmon/domain"
import { currentTraceparent } from "@dexmon/observability"
import { type DeliveryAttempt, DeliveryOutbox, deploymentProfile, WebhookStore } from "@dexmon/ports"
import { Clock, Context, Effect, Layer, Option, Result } from "effect"
import { unavailable } from "./Unavailable.ts"

/** A new endpoint as the API answers it once: the view and its secret. */
export interface WebhookCreatedView extends WebhookView {
  readonly secret: string
}

/** 32 random bytes, hex: the HMAC key a receiver verifies deliveries with. */
const newSecret = () => `whsec_${randomBytes(32).toString("hex")}`

const viewOf = (webhook: Webhook): WebhookView => ({
  id: webhook.id,
  url: webhook.url,
  kinds: webhook.kinds,
  created_at: webhook.created_at
})

const refusedUrl = (message: string) =>
  new ValidationError({ message: `invalid request payload: url: ${message}`, issues: [{ path: "url", message }] })

const notFound = () => new NotFound({ message: "no such webhook for this caller" })

/**
 * The caller's webhook endpoints: registration (with the URL policy: `https`
 * and public addresses only in production, checked again by the deliverer at
 * every attempt), listing, removal, secret rotation, a test delivery, and the
 * recorded attempts.
 */
export class Webhooks extends Context.Service<
  Webhooks,
  {
    readonly register: (
      userId: UserId,
      input: { readonly url: string; readonly kinds?: ReadonlyArray<AlertType> | null | undefined }
    ) => Effect.Effect<WebhookCreatedView, ValidationError | ServiceUnavailable>
    readonly list: (userId: UserId) => Effect.Effect<ReadonlyArray<WebhookView>, ServiceUnavailable>
    readonly remove: (userId: UserId, id: WebhookId) => Effect.Effect<void, NotFound | ServiceUnavailable>
    readonly rotateSecret: (
      userId: UserId,
      id: WebhookId
    ) => Effect.Effect<{ readonly id: WebhookId; readonly secret: string }, NotFound | ServiceUnavailable>
    readonly test: (
      userId: UserId,
      id: WebhookId
    ) => Effect.Effect<{ readonly delivery_id: string }, NotFound | ServiceUnavailable>
    readonly deliveries: (
      userId: UserId,
      id: WebhookId,
      limit: number
    ) => Effect.Effect<ReadonlyArray<DeliveryAttempt>, NotFound | ServiceUnavailable>
  }
>()("dexmon/gateway/Webhooks") {
  static readonly layer = Layer.effect(
    Webhooks,
    Effect.gen(function* () {
      const store = yield* WebhookStore
      const outbox = yield* DeliveryOutbox
      const profile = yield* deploymentProfile
      const storeUnavailable = unavailable("the webhook store")
      const outboxUnavailable = unavailable("the delivery outbox")

      /** In production the host must resolve, and only to public addresses (no request forgery into the cluster). */
      const checkResolved = Effect.fnUntraced(function* (url: string) {
        if (profile !== "production") return
        const host = new URL(url).hostname.replace(/^\[|\]$/g, "")
        // Bounded: a slow resolver must not hold the registration (the deliverer checks again at every attempt).
        const addresses = yield* Effect.tryPromise(() => lookup(host, { all: true, verbatim: true })).pipe(
          Effect.timeout("5 seconds"),
          Effect.mapError(() => refusedUrl(`its host ${host} does not resolve`))
        )
        const refused = addresses.find((entry) => !isPublicAddress(entry.address))
        if (refused !== undefined) {
          // The address is not named: a registration must not be a way to learn the cluster's addresses.
          return yield* refusedUrl("its host resolves to an address that is not public")
        }
      })

      const register = Effect.fn("Webhooks.register")(function* (
        userId: UserId,
        input: { readonly url: string; readonly kinds?: ReadonlyArray<AlertType> | null | undefined }
      ) {
        const checked = checkWebhookUrl(input.url, profile)
        if (Result.isFailure(checked)) return yield* refusedUrl(checked.failure.message)
        yield* checkResolved(input.url)
        const webhook: Webhook = {
          id: WebhookId.make(randomUUID()),
          user_id: userId,
          url: input.url,
          kinds: input.kinds ?? null,
          secret: newSecret(),
          created_at: yield* Clock.currentTimeMillis
        }
        yield* store.register(webhook).pipe(Effect.catchTag("WebhookStoreError", storeUnavailable))
        yield* Effect.annotateCurrentSpan({ "dexmon.webhook_id": webhook.id })
        return { ...viewOf(webhook), secret: webhook.secret }
      })

      const list = Effect.fn("Webhooks.list")(function* (userId: UserId) {
        const webhooks = yield* store.list(userId).pipe(Effect.catchTag("WebhookStoreError", storeUnavailable))
        return webhooks.map(viewOf)
      })

      const own = Effect.fnUntraced(function* (userId: UserId, id: WebhookId) {
        const webhook = yield* store.get(userId, id).pipe(Effect.catchTag("WebhookStoreError", storeUnavailable))
        if (Option.isNone(webhook)) return yield* notFound()
        return webhook.value
      })

      const remove = Effect.fn("Webhooks.remove")(function* (userId: UserId, id: WebhookId) {
        const removed = yield* store.remove(userId, id).pipe(Effect.catchTag("WebhookStoreError", storeUnavailable))
        if (!removed) return yield* notFound()
      })

      const rotateSecret = Effect.fn("Webhooks.rotateSecret")(function* (userId: UserId, id: WebhookId) {
        const secret = newSecret()
        const rotated = yield* store
          .rotateSecret(userId, id, secret)
          .pipe(Effect.catchTag("WebhookStoreError", storeUnavailable))
        if (Option.isNone(rotated)) return yield* notFound()
        return { id, secret }
      })

      /** A test notification, queued like a real one: signed, retried, recorded. */
      const test = Effect.fn("Webhooks.test")(function* (userId: UserId, id: WebhookId) {
        const webhook = yield* own(userId, id)
        const now = yield* Clock.currentTimeMillis
        const notificationId = `test-${randomUUID()}`
        const body = JSON.stringify({
          schema: "webhook-test",
          schema_version: 1,
          notification_id: notificationId,
          webhook_id: webhook.id,
          user_id: userId,
          sent_at: formatIsoTimestamp(now)
        })
        const delivery = deliveryId(notificationId, webhook.id)
        // Its attempts continue the request's trace.
        const traceparent = (yield* currentTraceparent) ?? null
        yield* outbox
          .enqueue([
            {
              delivery_id: delivery,
              webhook_id: webhook.id,
              user_id: userId,
              notification_id: notificationId,
              alert_id: null,
              body,
              due_at: now,
              traceparent
            }
          ])
          .pipe(Effect.catchTag("DeliveryOutboxError", outboxUnavailable))
        return { delivery_id: delivery }
      })

      const deliveries = Effect.fn("Webhooks.deliveries")(function* (userId: UserId, id: WebhookId, limit: number) {
        yield* own(userId, id)
        return yield* outbox.attempts(userId, id, limit).pipe(Effect.catchTag("DeliveryOutboxError", outboxUnavailable))
      })

      return Webhooks.of({ register, list, remove, rotateSecret, test, deliveries })
    })
  )
}
