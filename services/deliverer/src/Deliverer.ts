import { durationConfig } from "@dexmon/alerting"
import {
  type AlertNotification,
  decodeAlertNotificationBytes,
  deliveryId,
  formatIsoTimestamp,
  webhookTakes
} from "@dexmon/domain"
import { currentTraceHeaders, Metrics, parentFromHeaders } from "@dexmon/observability"
import {
  type Delivery,
  type DeliveryAttempt,
  DeliveryOutbox,
  EventLog,
  type NewDelivery,
  type NextStep,
  Topics,
  WebhookStore
} from "@dexmon/ports"
import { type DecodedBatch, recordTraceparent, runConsumer, superviseConsumer, writeWithRetry } from "@dexmon/streams"
import { Clock, Config, Effect, Layer, Option, Schedule, Scope, Semaphore, Stream } from "effect"
import { nextAttemptAt } from "./RetrySchedule.ts"
import { type SendResult, WebhookSender } from "./WebhookSender.ts"

export const DelivererConfig = Config.all({
  groupId: Config.String("DEXMON_DELIVERER_GROUP").pipe(Config.withDefault("dexmon-deliverer")),
  maxBatchSize: Config.Int("DEXMON_DELIVERER_BATCH_SIZE").pipe(Config.withDefault(500)),
  retries: Config.Int("DEXMON_WRITE_RETRIES").pipe(Config.withDefault(5)),
  /** How long a delivery is retried before it goes to the delivery DLQ. */
  budget: durationConfig("DEXMON_WEBHOOK_RETRY_BUDGET", 24 * 60 * 60_000),
  /** Attempts in flight per endpoint, and in all: one slow endpoint holds its own share only. */
  perWebhook: Config.Int("DEXMON_WEBHOOK_CONCURRENCY").pipe(Config.withDefault(4)),
  inFlight: Config.Int("DEXMON_WEBHOOK_IN_FLIGHT").pipe(Config.withDefault(64)),
  /** How often the outbox is asked for due deliveries. */
  pollEvery: Config.Int("DEXMON_WEBHOOK_POLL_MS").pipe(Config.withDefault(250))
})

/**
 * How far the gateway's clock (which stamps a registration) may run ahead of
 * the log's (which stamps a notification) without a notification decided
 * after the registration answered being passed over: an endpoint may get one
 * decided a few seconds before it, never miss one after.
 */
const REGISTRATION_SKEW = 10_000

/** Control characters (but tab and newlines) of an endpoint's answer: PostgreSQL text refuses NUL, logs mangle the rest. */
const isControl = (code: number) => (code < 0x20 && code !== 0x09 && code !== 0x0a && code !== 0x0d) || code === 0x7f
export const printable = (text: string) =>
  Array.from(text, (char) => (isControl(char.charCodeAt(0)) ? "\uFFFD" : char)).join("")

/**
 * What follows an attempt: delivered, tried again on the retry schedule
 * (counted from when the attempt ended), or given up (final, or the budget
 * from `dueAt` spent).
 */
export const nextStepAfter = (
  result: SendResult,
  at: {
    readonly attempt: number
    readonly endedAt: number
    readonly dueAt: number
    readonly budget: number
    readonly random: () => number
  }
): NextStep => {
  switch (result.outcome) {
    case "delivered":
      return { state: "DELIVERED" }
    case "final":
      return { state: "FAILED", error: result.error }
    case "retry": {
      const next = nextAttemptAt({
        attempt: at.attempt,
        now: at.endedAt,
        dueAt: at.dueAt,
        ...(result.retryAfter === undefined ? {} : { retryAfter: result.retryAfter }),
        random: at.random,
        budget: at.budget
      })
      return next === "exhausted"
        ? { state: "FAILED", error: `retry budget spent; last: ${result.error}` }
        : { state: "PENDING", next_attempt_at: next }
    }
  }
}

/** The header a replayed dead letter carries: deliver it to this endpoint only, again. */
export const REPLAY_WEBHOOK_HEADER = "dexmon-webhook-id"

/** A notification as decoded from `glucose.alerts`, with the exact text every endpoint gets. */
interface Decoded {
  readonly notification: AlertNotification
  readonly body: string
}

/**
 * A notification to deliver: what was decoded, its log time, the one endpoint a replayed dead letter names, and
 * the trace its deliveries' attempts continue (`recordTraceparent`).
 */
interface ToDeliver extends Decoded {
  readonly logTime: number
  readonly onlyWebhook: string | undefined
  readonly traceparent: string | undefined
}

const text = new TextDecoder()

/** A `glucose.alerts` message: decoded (for the user, kind and id) and kept as sent (the body every endpoint gets). */
const decodeNotification = (bytes: Uint8Array): Effect.Effect<Decoded, unknown> =>
  Effect.map(decodeAlertNotificationBytes(bytes), (notification) => ({ notification, body: text.decode(bytes) }))

const encoder = new TextEncoder()

/**
 * The deliverer: the webhook side of `glucose.alerts`.
 *
 * Its consumer turns each notification into one delivery per matching
 * endpoint of its user (registered before the notification was appended, of
 * that kind) in the delivery outbox, idempotently by delivery id, and commits
 * only then: a crash re-enqueues nothing twice. Its workers claim due
 * deliveries from the outbox (leased, so a killed worker's claims come back),
 * at most `DEXMON_WEBHOOK_CONCURRENCY` per endpoint and `DEXMON_WEBHOOK_IN_FLIGHT`
 * in all, and attempt each on its own fiber: a hanging endpoint ties up its
 * own share and nothing else. Each attempt is recorded; a failure is retried
 * on `RetrySchedule`'s backoff until `DEXMON_WEBHOOK_RETRY_BUDGET`, then goes
 * to `glucose.alerts.delivery.dlq` (`pnpm dlq replay --queue deliveries` queues it again).
 * The shares are per process: replicas each take theirs.
 */
export const DelivererLive = Layer.effectDiscard(
  Effect.gen(function* () {
    const eventLog = yield* EventLog
    const { names } = yield* Topics
    const webhooks = yield* WebhookStore
    const outbox = yield* DeliveryOutbox
    const sender = yield* WebhookSender
    const config = yield* DelivererConfig
    const scope = yield* Scope.Scope

    /** Queues the batch's deliveries: every matching endpoint of each notification's user, or the one a replay names. */
    const enqueue = Effect.fnUntraced(function* (items: ReadonlyArray<ToDeliver>) {
      // One read for the batch's users, not one per user.
      const endpoints = yield* webhooks.listFor(items.map((item) => item.notification.user_id))
      const now = yield* Clock.currentTimeMillis
      const fresh: Array<NewDelivery> = []
      for (const item of items) {
        const { notification } = item
        for (const webhook of endpoints.get(notification.user_id) ?? []) {
          const wanted =
            item.onlyWebhook !== undefined
              ? webhook.id === item.onlyWebhook
              : // An endpoint gets what was decided after its registration answered (within the clocks' skew:
                // the gateway's clock stamps the registration, the broker's the notification), of its kinds.
                webhook.created_at - REGISTRATION_SKEW <= item.logTime &&
                webhookTakes(webhook, notification.alert.alert_type)
          if (!wanted) continue
          const delivery: NewDelivery = {
            delivery_id: deliveryId(notification.notification_id, webhook.id),
            webhook_id: webhook.id,
            user_id: notification.user_id,
            notification_id: notification.notification_id,
            alert_id: notification.alert_id,
            body: item.body,
            due_at: now,
            traceparent: item.traceparent ?? null
          }
          if (item.onlyWebhook !== undefined) yield* outbox.requeue(delivery)
          else fresh.push(delivery)
        }
      }
      if (fresh.length > 0) yield* outbox.enqueue(fresh)
    })

    /** Each decoded notification with where it sits in the log: its log time and a replay's endpoint. */
    const applyToOutbox = (batches: Stream.Stream<DecodedBatch<Decoded>>) =>
      batches.pipe(
        Stream.map(
          (batch): DecodedBatch<ToDeliver> => ({
            ...batch,
            decoded: batch.decoded.map(({ record, value }) => ({
              record,
              value: {
                ...value,
                logTime: record.timestamp,
                onlyWebhook: record.headers[REPLAY_WEBHOOK_HEADER],
                traceparent: recordTraceparent(batch, record)
              }
            }))
          })
        ),
        writeWithRetry(enqueue, {
          retries: config.retries,
          initialDelay: 100,
          maxDelay: 5_000,
          isTransient: (error) => error.transient
        })
      )

    const consumer = runConsumer({
      eventLog,
      topic: names.alerts,
      groupId: config.groupId,
      maxBatchSize: config.maxBatchSize,
      decode: decodeNotification,
      apply: applyToOutbox,
      deadLetterTopic: names.deliveryDlq
    })

    /**
     * A delivery that will not be made: in the DLQ, with why, for `pnpm dlq` to list and replay. It carries the
     * trace of the attempt that gave up, so a replay's attempts continue the delivery's trace.
     */
    const deadLetter = (delivery: Delivery, attempts: number, error: string, trace: Readonly<Record<string, string>>) =>
      eventLog
        .append(names.deliveryDlq, [
          {
            key: delivery.webhook_id,
            value: encoder.encode(delivery.body),
            headers: {
              ...trace,
              "content-type": "application/json",
              [REPLAY_WEBHOOK_HEADER]: delivery.webhook_id,
              "dexmon-delivery": delivery.delivery_id,
              "dlq-error-tag": "WebhookDeliveryFailed",
              "dlq-error-message": error.slice(0, 2000),
              "dlq-source-topic": names.alerts,
              "dlq-attempts": String(attempts),
              "dlq-first-failure-at": formatIsoTimestamp(delivery.due_at)
            }
          }
        ])
        .pipe(
          Effect.tap(() => Effect.sync(() => Metrics.deadLetters.inc({ topic: names.deliveryDlq }))),
          Effect.tapError((failure) => Effect.logError(`cannot write to ${names.deliveryDlq}; retrying`, failure)),
          // Bounded, inside the attempt's lease: if the log stays down, the attempt is not recorded and the
          // lease brings the delivery back (its dead letter may then be written twice, never lost).
          Effect.retry({ schedule: Schedule.exponential("200 millis"), times: 6 })
        )

    /** What to do after an attempt: delivered, tried again at the schedule's time, or given up. */
    const nextStep = (delivery: Delivery, attempt: number, endedAt: number, result: SendResult) =>
      nextStepAfter(result, { attempt, endedAt, dueAt: delivery.due_at, budget: config.budget, random: Math.random })

    /**
     * One attempt of one delivery, recorded under its lease; a failure for good
     * goes to the DLQ first (test deliveries and removed endpoints excepted).
     * The retry wait counts from when the attempt ended, so a slow failure (a
     * timeout) does not use up its own wait.
     */
    const attemptOne = Effect.fnUntraced(function* (delivery: Delivery) {
      const attempt = delivery.attempts + 1
      const startedAt = yield* Clock.currentTimeMillis
      const webhook = yield* webhooks.byId(delivery.webhook_id)
      const result: SendResult = Option.isNone(webhook)
        ? { outcome: "final", status: null, error: "the endpoint was removed", latencyMs: 0 }
        : yield* sender.send({
            url: webhook.value.url,
            body: delivery.body,
            secret: webhook.value.secret,
            deliveryId: delivery.delivery_id,
            now: startedAt
          })
      const endedAt = yield* Clock.currentTimeMillis
      const step = nextStep(delivery, attempt, endedAt, result)
      const record: DeliveryAttempt = {
        delivery_id: delivery.delivery_id,
        webhook_id: delivery.webhook_id,
        user_id: delivery.user_id,
        notification_id: delivery.notification_id,
        attempt,
        at: startedAt,
        status_code: result.status ?? null,
        latency_ms: result.latencyMs,
        error: result.outcome === "delivered" ? null : printable(result.error),
        outcome: step.state === "DELIVERED" ? "DELIVERED" : step.state === "PENDING" ? "RETRY" : "FAILED"
      }
      const next: NextStep = step.state === "FAILED" ? { state: "FAILED", error: printable(step.error) } : step
      if (next.state === "FAILED" && delivery.alert_id !== null && Option.isSome(webhook)) {
        yield* deadLetter(delivery, attempt, next.error, yield* currentTraceHeaders)
      }
      yield* outbox
        .record(record, next, delivery.next_attempt_at)
        .pipe(
          Effect.retry({ while: (error) => error.transient, schedule: Schedule.exponential("200 millis"), times: 6 })
        )
      Metrics.webhookDeliveries.inc({ outcome: record.outcome })
      yield* Metrics.observe(Metrics.webhookLatency, {}, result.latencyMs / 1000)
    })

    /**
     * How long a claim holds a delivery: a wait for the endpoint's turn (at
     * most one attempt, see `poll`), the attempt, and the bounded DLQ and
     * record retries. An attempt still running at the lease's end is
     * interrupted, so it can never overlap the next claim of its delivery.
     */
    const lease = 2 * sender.timeout + 60_000

    // In-flight attempts per endpoint, each endpoint's turns (its share of concurrent attempts), and the
    // deliveries in flight. An endpoint at its share is left out of the next claims, so at most one more
    // round waits for its turn; the turns keep it at its share exactly (in this process).
    const inFlight = new Map<string, number>()
    const turns = new Map<string, Semaphore.Semaphore>()
    const inFlightIds = new Set<string>()
    let total = 0
    const take = (delivery: Delivery) => {
      total += 1
      inFlightIds.add(delivery.delivery_id)
      inFlight.set(delivery.webhook_id, (inFlight.get(delivery.webhook_id) ?? 0) + 1)
      let turn = turns.get(delivery.webhook_id)
      if (turn === undefined) {
        turn = Semaphore.makeUnsafe(config.perWebhook)
        turns.set(delivery.webhook_id, turn)
      }
      return turn
    }
    const release = (delivery: Delivery) =>
      Effect.sync(() => {
        total -= 1
        inFlightIds.delete(delivery.delivery_id)
        const left = (inFlight.get(delivery.webhook_id) ?? 1) - 1
        if (left > 0) inFlight.set(delivery.webhook_id, left)
        else {
          inFlight.delete(delivery.webhook_id)
          turns.delete(delivery.webhook_id)
        }
      })

    const poll = Effect.gen(function* () {
      const free = config.inFlight - total
      if (free <= 0) return
      const busy = [...inFlight].filter(([, count]) => count >= config.perWebhook).map(([id]) => id)
      const now = yield* Clock.currentTimeMillis
      const claimed = yield* outbox.claim(now, { limit: free, perWebhook: config.perWebhook, lease, excluding: busy })
      for (const delivery of claimed) {
        // Cannot happen while attempts end before their lease; a second attempt of one delivery would be worse.
        if (inFlightIds.has(delivery.delivery_id)) continue
        const turn = take(delivery)
        yield* turn
          .withPermits(1)(attemptOne(delivery))
          .pipe(
            Effect.timeout(lease - 1_000),
            // Stopped (a shutdown, a rolling update): handed back at once rather than after its lease, so an
            // urgent notification waits for the next deliverer, not for the lease. Best effort: the lease holds.
            Effect.onInterrupt(() =>
              Clock.currentTimeMillis.pipe(
                Effect.flatMap((now) => outbox.release(delivery.delivery_id, delivery.next_attempt_at, now)),
                Effect.timeout("2 seconds"),
                Effect.ignore
              )
            ),
            // An attempt not recorded comes back with its lease.
            Effect.catchCause((cause) =>
              Effect.logWarning("webhook attempt not recorded; its lease will bring it back", cause)
            ),
            Effect.ensuring(release(delivery)),
            // Every attempt of a delivery continues the trace that queued it: the notification's, so the POST's.
            Effect.withSpan("Deliverer.attempt", {
              attributes: { "dexmon.delivery_id": delivery.delivery_id },
              ...(delivery.traceparent === null
                ? {}
                : { parent: parentFromHeaders({ traceparent: delivery.traceparent }) })
            }),
            Effect.forkIn(scope)
          )
      }
    }).pipe(Effect.catchCause((cause) => Effect.logWarning("delivery outbox poll failed; polling again", cause)))

    yield* Effect.forkScoped(superviseConsumer("deliverer", consumer))
    yield* Effect.forkScoped(
      Effect.repeat(poll, Schedule.spaced(config.pollEvery)).pipe(Effect.annotateLogs({ consumer: "deliverer" }))
    )
    yield* Effect.logInfo(
      `deliverer consuming ${names.alerts} as group ${config.groupId}: ${config.perWebhook} attempts per endpoint, ${config.inFlight} in all, retry budget ${config.budget / 60_000} min`
    )
  })
)
