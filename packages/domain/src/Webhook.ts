import { createHash, createHmac } from "node:crypto"
import { Schema } from "effect"
import { AlertType } from "./Alert.ts"
import type { UserId } from "./Identifiers.ts"
import { IsoTimestamp } from "./Timestamp.ts"

/** A webhook endpoint's id: a random UUID, issued at registration. */
export const WebhookId = Schema.String.check(Schema.isUUID()).pipe(Schema.brand("WebhookId"))
export type WebhookId = typeof WebhookId.Type

/**
 * One endpoint a user registered: where notifications of which kinds go
 * (`kinds` null: every kind), and the secret that signs them. The secret is
 * the store's to keep; the API shows it once, at registration or rotation.
 */
export interface Webhook {
  readonly id: WebhookId
  readonly user_id: UserId
  readonly url: string
  readonly kinds: ReadonlyArray<AlertType> | null
  readonly secret: string
  /** When the registration answered (epoch ms): notifications decided after it are delivered to it. */
  readonly created_at: number
}

/** Whether an endpoint takes notifications of this kind. */
export const webhookTakes = (webhook: Pick<Webhook, "kinds">, kind: AlertType): boolean =>
  webhook.kinds === null || webhook.kinds.includes(kind)

/** An endpoint as the API lists it: everything but the secret. */
export const WebhookView = Schema.Struct({
  id: WebhookId,
  url: Schema.String,
  kinds: Schema.NullOr(Schema.Array(AlertType)),
  created_at: IsoTimestamp
})
export type WebhookView = typeof WebhookView.Type

/**
 * The id of one delivery, the same on every retry of it: a hash of the
 * notification's id and the endpoint's id, so a receiver drops repeats by it
 * (`DexMon-Delivery`) and the outbox writes each delivery once.
 */
export const deliveryId = (notificationId: string, webhookId: string): string =>
  createHash("sha256").update(`${notificationId}\u0000${webhookId}`).digest("hex").slice(0, 32)

/**
 * The signature of a delivery: `v1=` and the hex HMAC-SHA256 of
 * `"<timestamp>.<body>"` with the endpoint's secret, the timestamp in Unix
 * seconds as sent in `DexMon-Timestamp`. A receiver recomputes it over the raw
 * body, compares in constant time, and rejects a stale timestamp.
 */
export const webhookSignature = (secret: string, timestampSeconds: number, body: string): string =>
  `v1=${createHmac("sha256", secret).update(`${timestampSeconds}.${body}`).digest("hex")}`

/** The headers a delivery carries. */
export const WebhookHeaders = {
  timestamp: "dexmon-timestamp",
  delivery: "dexmon-delivery",
  signature: "dexmon-signature"
} as const
