import { UserId, WebhookId } from "@dexmon/domain"
import { Context, type Effect, type Option, Schema } from "effect"
import { StoreFailureFields } from "../StoreFailure.ts"

/**
 * One delivery to queue: one notification for one endpoint. A schema, so the
 * deliverer can carry it whole through its dead-letter topic and `requeue` it.
 */
export const NewDelivery = Schema.Struct({
  /** `deliveryId(notification_id, webhook_id)`: the same on every retry, so enqueueing twice queues once. */
  delivery_id: Schema.String,
  webhook_id: WebhookId,
  user_id: UserId,
  notification_id: Schema.String,
  /** The alert the notification is about; null for a test delivery. */
  alert_id: Schema.NullOr(Schema.String),
  /** The exact JSON text to POST, signed as it is: every attempt sends these bytes. */
  body: Schema.String,
  /** When the delivery became due (epoch ms); the retry budget counts from it. */
  due_at: Schema.Number,
  /**
   * The W3C `traceparent` of what queued it (the notification's record, a test's request), which every attempt
   * continues; null when none was traced (and for deliveries queued before the outbox kept it).
   */
  traceparent: Schema.NullOr(Schema.String)
})
export type NewDelivery = typeof NewDelivery.Type

export const DeliveryState = Schema.Literals(["PENDING", "DELIVERED", "FAILED"])
export type DeliveryState = typeof DeliveryState.Type

/** A queued delivery as the outbox holds it. */
export const Delivery = Schema.Struct({
  ...NewDelivery.fields,
  /** Attempts recorded so far; 0 until the first. */
  attempts: Schema.Number,
  /** When it may be claimed next (epoch ms): `due_at` at first, then a retry's time or a claim's lease end. */
  next_attempt_at: Schema.Number,
  state: DeliveryState,
  last_error: Schema.NullOr(Schema.String)
})
export type Delivery = typeof Delivery.Type

/** One attempt at a delivery, as recorded for the endpoint's owner to read. */
export const DeliveryAttempt = Schema.Struct({
  delivery_id: Schema.String,
  webhook_id: WebhookId,
  user_id: UserId,
  notification_id: Schema.String,
  /** 1 for the first attempt (counted again from 1 after a `requeue`). */
  attempt: Schema.Number,
  /** When the attempt started (epoch ms). */
  at: Schema.Number,
  /** The receiver's HTTP status; null when none came (refused, timed out, endpoint removed). */
  status_code: Schema.NullOr(Schema.Number),
  latency_ms: Schema.Number,
  error: Schema.NullOr(Schema.String),
  outcome: Schema.Literals(["DELIVERED", "RETRY", "FAILED"])
})
export type DeliveryAttempt = typeof DeliveryAttempt.Type

/** What becomes of a delivery after an attempt. */
export type NextStep =
  | { readonly state: "DELIVERED" }
  | { readonly state: "PENDING"; readonly next_attempt_at: number }
  | { readonly state: "FAILED"; readonly error: string }

/** One alert's deliveries counted by state. */
export interface DeliveryCounts {
  readonly pending: number
  readonly delivered: number
  readonly failed: number
}

export interface ClaimOptions {
  /** At most this many deliveries in all. */
  readonly limit: number
  /** At most this many for any one endpoint, so one endpoint's backlog never fills the batch. */
  readonly perWebhook: number
  /** How long (ms) the claimed deliveries are held back from other claims while they are attempted. */
  readonly lease: number
  /** Endpoints (webhook ids) to take nothing of this time: a worker leaves out those already at their share in flight. */
  readonly excluding?: ReadonlyArray<string> | undefined
}

export class DeliveryOutboxError extends Schema.TaggedError<DeliveryOutboxError>()(
  "DeliveryOutboxError",
  StoreFailureFields
) {}

/**
 * The durable queue of webhook deliveries. The deliverer's consumer enqueues
 * one delivery per notification and endpoint, then commits its log offset;
 * workers claim due deliveries, attempt them and record each attempt. A claim
 * is a lease, not a removal: a worker killed mid-attempt leaves its deliveries
 * to come due again when the lease ends, so every delivery is attempted until
 * it is recorded DELIVERED or FAILED (at least once; receivers drop repeats by
 * the delivery id).
 */
export class DeliveryOutbox extends Context.Service<
  DeliveryOutbox,
  {
    /**
     * Queues deliveries as PENDING, due at their `due_at`. Idempotent by
     * `delivery_id`: one already queued (in any state) is left exactly as it
     * is, so a consumer replaying its log queues nothing twice. Answers how many were new.
     */
    readonly enqueue: (deliveries: ReadonlyArray<NewDelivery>) => Effect.Effect<number, DeliveryOutboxError>
    /**
     * A dead-letter replay: a FAILED delivery, or one the outbox does not
     * hold, becomes PENDING with no attempts, due at the given `due_at` (the
     * retry budget starts again), in the given `traceparent`'s trace. A
     * DELIVERED or still PENDING one is left alone.
     */
    readonly requeue: (delivery: NewDelivery) => Effect.Effect<void, DeliveryOutboxError>
    /**
     * Takes up to `limit` PENDING deliveries due at `now` (epoch ms), oldest
     * `next_attempt_at` first (then oldest `due_at`, so deliveries that one
     * lease brings back together go in the order they came due), at most `perWebhook` of any one endpoint, and
     * leases them: their `next_attempt_at` becomes `now + lease` in the same
     * statement, so concurrent claims never answer the same delivery, and a
     * delivery whose worker died comes back once the lease ends. Answered in
     * claim order, as they now are (`next_attempt_at` is the lease's end).
     */
    readonly claim: (now: number, options: ClaimOptions) => Effect.Effect<ReadonlyArray<Delivery>, DeliveryOutboxError>
    /**
     * Records one attempt and moves its delivery on, atomically: the attempt is
     * stored and the delivery takes `attempts = attempt.attempt` and the next
     * step's state (with its `next_attempt_at`, or its error as `last_error`).
     * A delivery already DELIVERED or FAILED keeps its state (a late attempt
     * from a worker whose lease ran out is only logged), and recording the same
     * attempt again stores it once. With `leasedUntil` (the `next_attempt_at`
     * the claim answered), the delivery moves only while that lease is its
     * latest: an attempt that outlived its lease, whose delivery another claim
     * took meanwhile, is logged but moves nothing.
     */
    readonly record: (
      attempt: DeliveryAttempt,
      next: NextStep,
      leasedUntil?: number
    ) => Effect.Effect<void, DeliveryOutboxError>
    /**
     * Hands a claimed delivery back before its lease ends (its attempt was
     * stopped, say by a shutdown), due again at `now`: only while that lease
     * (`leasedUntil`, as the claim answered) is still the delivery's latest.
     */
    readonly release: (deliveryId: string, leasedUntil: number, now: number) => Effect.Effect<void, DeliveryOutboxError>
    readonly get: (deliveryId: string) => Effect.Effect<Option.Option<Delivery>, DeliveryOutboxError>
    /** The newest `limit` attempts at one of the user's endpoints, newest first; none for another user's. */
    readonly attempts: (
      userId: UserId,
      webhookId: WebhookId,
      limit: number
    ) => Effect.Effect<ReadonlyArray<DeliveryAttempt>, DeliveryOutboxError>
    /**
     * Each alert's deliveries counted by state. An alert with no delivery (no
     * endpoint took it) is absent from the map rather than counted as zeros.
     */
    readonly statusOf: (
      alertIds: ReadonlyArray<string>
    ) => Effect.Effect<ReadonlyMap<string, DeliveryCounts>, DeliveryOutboxError>
    /** A cheap round trip to the store, for readiness probes. */
    readonly ping: Effect.Effect<void, DeliveryOutboxError>
  }
>()("dexmon/ports/webhooks/DeliveryOutbox") {}
