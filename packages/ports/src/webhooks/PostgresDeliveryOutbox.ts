import type { UserId, WebhookId } from "@dexmon/domain"
import { PgTypes } from "@effect/sql-pg"
import { Effect, Layer, Option, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { runMigrations } from "../postgres/Migrations.ts"
import { OID, pgArray } from "../postgres/PgArrays.ts"
import { failureOf } from "../StoreFailure.ts"
import {
  type ClaimOptions,
  Delivery,
  DeliveryAttempt,
  type DeliveryCounts,
  DeliveryOutbox,
  DeliveryOutboxError,
  type NewDelivery,
  type NextStep
} from "./DeliveryOutbox.ts"

/** The outbox's schema, step by step (exported for the test that upgrades a queue of the first step's rows). */
export const migrations = {
  "0001_webhook_deliveries": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    // No foreign key to `webhooks`: a removed endpoint's queued deliveries stay, and the deliverer drops them.
    yield* sql`CREATE TABLE webhook_deliveries (
      delivery_id text PRIMARY KEY,
      webhook_id uuid NOT NULL,
      user_id text NOT NULL,
      notification_id text NOT NULL,
      alert_id text,
      body text NOT NULL,
      due_at timestamptz NOT NULL,
      attempts integer NOT NULL DEFAULT 0,
      next_attempt_at timestamptz NOT NULL,
      state text NOT NULL CHECK (state IN ('PENDING', 'DELIVERED', 'FAILED')),
      last_error text
    )`
    // The claim's range scan: the due PENDING rows, oldest first.
    yield* sql`CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at)`
    // `statusOf`: an alert's deliveries.
    yield* sql`CREATE INDEX webhook_deliveries_by_alert ON webhook_deliveries (alert_id)`
    // `at` in the key: after a requeue the attempts count from 1 again.
    yield* sql`CREATE TABLE webhook_delivery_attempts (
      delivery_id text NOT NULL,
      attempt integer NOT NULL,
      at timestamptz NOT NULL,
      webhook_id uuid NOT NULL,
      user_id text NOT NULL,
      notification_id text NOT NULL,
      status_code integer,
      latency_ms double precision NOT NULL,
      error text,
      outcome text NOT NULL CHECK (outcome IN ('DELIVERED', 'RETRY', 'FAILED')),
      PRIMARY KEY (delivery_id, attempt, at)
    )`
    // `attempts`: one endpoint's newest attempts.
    yield* sql`CREATE INDEX webhook_delivery_attempts_by_endpoint
      ON webhook_delivery_attempts (user_id, webhook_id, at DESC)`
  }),
  // The trace each delivery's attempts continue. Nullable: rows queued before it have none, and their attempts
  // start traces of their own, as they did.
  "0002_webhook_delivery_traceparent": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE webhook_deliveries ADD COLUMN traceparent text`
  })
}

const failWith = failureOf((fields) => new DeliveryOutboxError(fields))

const decodeDeliveries = (operation: string) => (rows: unknown) =>
  Schema.decodeUnknownEffect(Schema.Array(Delivery))(rows).pipe(Effect.mapError(failWith(operation)))

const decodeAttempts = (operation: string) => (rows: unknown) =>
  Schema.decodeUnknownEffect(Schema.Array(DeliveryAttempt))(rows).pipe(Effect.mapError(failWith(operation)))

const CountsRow = Schema.Struct({
  alert_id: Schema.String,
  pending: Schema.Number,
  delivered: Schema.Number,
  failed: Schema.Number
})

/** Epoch milliseconds as a timestamptz parameter. */
const instant = (millis: number) => PgTypes.timestamptz(millis)

/** A count or a limit the caller gave: only a positive whole number asks for anything. */
const isCount = (n: number) => Number.isSafeInteger(n) && n > 0

/**
 * How many more candidates than `limit` a claim considers. Candidates are
 * chosen without locks, so concurrent claims choose the same ones; the spare
 * ones are what the claims that lose the race for the first take instead.
 */
const CANDIDATE_FACTOR = 4

/** The webhook delivery outbox in two PostgreSQL tables: the deliveries, and every attempt at them. */
export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* runMigrations("webhook_deliveries", migrations)

  const epochMillis = (column: string) => sql`floor(extract(epoch FROM ${sql(column)}) * 1000)::float8`

  const deliveryColumns = sql`delivery_id, webhook_id::text AS webhook_id, user_id, notification_id, alert_id, body,
    ${epochMillis("due_at")} AS due_at, attempts, ${epochMillis("next_attempt_at")} AS next_attempt_at,
    state, last_error, traceparent`

  const attemptColumns = sql`delivery_id, webhook_id::text AS webhook_id, user_id, notification_id, attempt,
    ${epochMillis("at")} AS at, status_code, latency_ms, error, outcome`

  /**
   * One statement for the whole batch. Rows go in key order, so two
   * overlapping batches wait on each other's keys in the same order rather
   * than deadlock; `DO NOTHING` leaves a queued delivery (whatever its state)
   * as it is, and drops repeats within the batch.
   */
  const enqueue = Effect.fn("DeliveryOutbox.enqueue")(function* (deliveries: ReadonlyArray<NewDelivery>) {
    if (deliveries.length === 0) return 0
    const inserted = yield* sql`
      INSERT INTO webhook_deliveries
        (delivery_id, webhook_id, user_id, notification_id, alert_id, body, due_at, traceparent, attempts,
          next_attempt_at, state)
      SELECT delivery_id, webhook_id, user_id, notification_id, alert_id, body, due_at, traceparent, 0, due_at,
        'PENDING'
      FROM unnest(
        ${pgArray(
          deliveries.map((d) => d.delivery_id),
          OID.text
        )}::text[],
        ${pgArray(
          deliveries.map((d) => d.webhook_id),
          OID.uuid
        )}::uuid[],
        ${pgArray(
          deliveries.map((d) => d.user_id),
          OID.text
        )}::text[],
        ${pgArray(
          deliveries.map((d) => d.notification_id),
          OID.text
        )}::text[],
        ${pgArray(
          deliveries.map((d) => d.alert_id),
          OID.text
        )}::text[],
        ${pgArray(
          deliveries.map((d) => d.body),
          OID.text
        )}::text[],
        ${pgArray(
          deliveries.map((d) => d.due_at),
          OID.timestamptz
        )}::timestamptz[],
        ${pgArray(
          deliveries.map((d) => d.traceparent),
          OID.text
        )}::text[]
      ) AS batch (delivery_id, webhook_id, user_id, notification_id, alert_id, body, due_at, traceparent)
      ORDER BY delivery_id
      ON CONFLICT (delivery_id) DO NOTHING
      RETURNING 1`.pipe(Effect.mapError(failWith("enqueue")))
    return inserted.length
  })

  /**
   * An upsert that only touches a FAILED row: the conflict's `WHERE` leaves DELIVERED and PENDING ones alone. The
   * replay is a new start, in the trace of what requeued it.
   */
  const requeue = Effect.fn("DeliveryOutbox.requeue")(function* (delivery: NewDelivery) {
    yield* sql`
      INSERT INTO webhook_deliveries
        (delivery_id, webhook_id, user_id, notification_id, alert_id, body, due_at, traceparent, attempts,
          next_attempt_at, state)
      VALUES (${delivery.delivery_id}, ${delivery.webhook_id}::uuid, ${delivery.user_id}, ${delivery.notification_id},
        ${delivery.alert_id}::text, ${delivery.body}, ${instant(delivery.due_at)}, ${delivery.traceparent}::text, 0,
        ${instant(delivery.due_at)}, 'PENDING')
      ON CONFLICT (delivery_id) DO UPDATE SET
        state = 'PENDING', attempts = 0, due_at = EXCLUDED.due_at, next_attempt_at = EXCLUDED.next_attempt_at,
        last_error = NULL, traceparent = EXCLUDED.traceparent
      WHERE webhook_deliveries.state = 'FAILED'`.pipe(Effect.mapError(failWith("requeue")))
  })

  /**
   * Three steps in one statement. `candidates` ranks the due rows per
   * endpoint (a window function, which cannot lock) and keeps the first
   * `perWebhook` of each, oldest first. `locked` then locks the oldest
   * `limit` of them that no concurrent claim holds (SKIP LOCKED), checking
   * again that each is still PENDING and due: a row another claim leased
   * meanwhile fails that check against its new version. The update leases
   * exactly the locked rows, so two claims never answer the same delivery.
   */
  const claim = Effect.fn("DeliveryOutbox.claim")(function* (now: number, options: ClaimOptions) {
    if (!isCount(options.limit) || !isCount(options.perWebhook)) return []
    const excluding = options.excluding ?? []
    return yield* sql`
      WITH candidates AS (
        SELECT delivery_id FROM (
          SELECT delivery_id, next_attempt_at, due_at,
            row_number() OVER (PARTITION BY webhook_id ORDER BY next_attempt_at, due_at, delivery_id) AS endpoint_rank
          FROM webhook_deliveries
          WHERE state = 'PENDING' AND next_attempt_at <= ${instant(now)}
            ${excluding.length === 0 ? sql`` : sql`AND webhook_id::text <> ALL(${pgArray(excluding, OID.text)}::text[])`}
        ) due
        WHERE endpoint_rank <= ${options.perWebhook}
        ORDER BY next_attempt_at, due_at, delivery_id
        LIMIT ${options.limit * CANDIDATE_FACTOR}
      ), locked AS (
        SELECT delivery_id, next_attempt_at AS was_due FROM webhook_deliveries
        WHERE delivery_id IN (SELECT delivery_id FROM candidates)
          AND state = 'PENDING' AND next_attempt_at <= ${instant(now)}
        ORDER BY next_attempt_at, due_at, delivery_id
        LIMIT ${options.limit}
        FOR UPDATE SKIP LOCKED
      ), claimed AS (
        UPDATE webhook_deliveries SET next_attempt_at = ${instant(now + Math.max(0, options.lease))}
        FROM locked WHERE webhook_deliveries.delivery_id = locked.delivery_id
        RETURNING webhook_deliveries.*, locked.was_due
      )
      SELECT ${deliveryColumns} FROM claimed ORDER BY was_due, due_at, delivery_id`.pipe(
      Effect.mapError(failWith("claim")),
      Effect.flatMap(decodeDeliveries("claim"))
    )
  })

  /**
   * One statement, so one transaction: the attempt is inserted by a
   * data-modifying CTE (which runs whether or not it is read), and the
   * delivery updated beside it. Only a PENDING delivery moves: a worker whose
   * lease ran out may report after another finished the delivery.
   */
  const record = Effect.fn("DeliveryOutbox.record")(function* (
    attempt: DeliveryAttempt,
    next: NextStep,
    leasedUntil?: number
  ) {
    const nextAttemptAt = next.state === "PENDING" ? instant(next.next_attempt_at) : null
    const lastError = next.state === "FAILED" ? next.error : next.state === "PENDING" ? attempt.error : null
    yield* sql`
      WITH logged AS (
        INSERT INTO webhook_delivery_attempts
          (delivery_id, attempt, at, webhook_id, user_id, notification_id, status_code, latency_ms, error, outcome)
        VALUES (${attempt.delivery_id}, ${attempt.attempt}::int, ${instant(attempt.at)}, ${attempt.webhook_id}::uuid,
          ${attempt.user_id}, ${attempt.notification_id}, ${attempt.status_code}::int, ${attempt.latency_ms}::float8,
          ${attempt.error}::text, ${attempt.outcome})
        ON CONFLICT (delivery_id, attempt, at) DO NOTHING
      )
      UPDATE webhook_deliveries SET
        state = ${next.state}, attempts = ${attempt.attempt}::int,
        next_attempt_at = coalesce(${nextAttemptAt}::timestamptz, next_attempt_at), last_error = ${lastError}::text
      WHERE delivery_id = ${attempt.delivery_id} AND state = 'PENDING'
        ${leasedUntil === undefined ? sql`` : sql`AND next_attempt_at = ${instant(leasedUntil)}`}`.pipe(
      Effect.mapError(failWith("record"))
    )
  })

  const release = Effect.fn("DeliveryOutbox.release")(function* (deliveryId: string, leasedUntil: number, now: number) {
    yield* sql`
      UPDATE webhook_deliveries SET next_attempt_at = ${instant(now)}
      WHERE delivery_id = ${deliveryId} AND state = 'PENDING' AND next_attempt_at = ${instant(leasedUntil)}`.pipe(
      Effect.mapError(failWith("release"))
    )
  })

  const get = Effect.fn("DeliveryOutbox.get")(function* (deliveryId: string) {
    const rows = yield* sql`SELECT ${deliveryColumns} FROM webhook_deliveries WHERE delivery_id = ${deliveryId}`.pipe(
      Effect.mapError(failWith("get")),
      Effect.flatMap(decodeDeliveries("get"))
    )
    return Option.fromNullishOr(rows[0])
  })

  const attempts = Effect.fn("DeliveryOutbox.attempts")(function* (
    userId: UserId,
    webhookId: WebhookId,
    limit: number
  ) {
    if (!isCount(limit)) return []
    return yield* sql`
      SELECT ${attemptColumns} FROM webhook_delivery_attempts
      WHERE user_id = ${userId} AND webhook_id = ${webhookId}::uuid
      ORDER BY at DESC, attempt DESC, delivery_id DESC
      LIMIT ${limit}`.pipe(Effect.mapError(failWith("attempts")), Effect.flatMap(decodeAttempts("attempts")))
  })

  const statusOf = Effect.fn("DeliveryOutbox.statusOf")(function* (alertIds: ReadonlyArray<string>) {
    const counts = new Map<string, DeliveryCounts>()
    if (alertIds.length === 0) return counts
    const rows = yield* sql`
      SELECT alert_id,
        count(*) FILTER (WHERE state = 'PENDING')::int AS pending,
        count(*) FILTER (WHERE state = 'DELIVERED')::int AS delivered,
        count(*) FILTER (WHERE state = 'FAILED')::int AS failed
      FROM webhook_deliveries
      WHERE alert_id = ANY(${pgArray([...new Set(alertIds)], OID.text)}::text[])
      GROUP BY alert_id`.pipe(
      Effect.mapError(failWith("statusOf")),
      Effect.flatMap((rows) =>
        Schema.decodeUnknownEffect(Schema.Array(CountsRow))(rows).pipe(Effect.mapError(failWith("statusOf")))
      )
    )
    for (const { alert_id, ...byState } of rows) counts.set(alert_id, byState)
    return counts
  })

  const ping = sql`SELECT 1`.pipe(Effect.asVoid, Effect.mapError(failWith("ping")))

  return DeliveryOutbox.of({ enqueue, requeue, claim, record, release, get, attempts, statusOf, ping })
})

/** The webhook delivery outbox on whatever PostgreSQL the `SqlClient` points at. */
export const layer = Layer.effect(DeliveryOutbox, make)
