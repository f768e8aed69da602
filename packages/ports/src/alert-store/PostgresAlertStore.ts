import type { Alert, AlertId, UserId } from "@dexmon/domain"
import { Effect, Layer, Option, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { runMigrations } from "../postgres/Migrations.ts"
import { OID, pgArray } from "../postgres/PgArrays.ts"
import { failureOf } from "../StoreFailure.ts"
import { type AlertQuery, AlertStore, AlertStoreError } from "./AlertStore.ts"
import {
  decodeAlertCursor,
  decodeStoredAlert,
  encodeAlertCursor,
  latestPerEpisode,
  storedStatuses
} from "./StoredAlert.ts"

const migrations = {
  "0001_glucose_alerts": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    // The shape of the Cassandra table: partitioned by user, clustered by time (newest first) and alert id.
    yield* sql`CREATE TABLE glucose_alerts (
      user_id text NOT NULL,
      "timestamp" timestamptz NOT NULL,
      alert_id uuid NOT NULL,
      sensor_id text NOT NULL,
      glucose_value double precision NOT NULL,
      alert_type text NOT NULL CHECK (alert_type IN ('LOW', 'HIGH')),
      status text NOT NULL,
      PRIMARY KEY (user_id, "timestamp", alert_id)
    )`
  }),
  "0002_alert_episodes": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    // 0001 allowed only LOW and HIGH, in a CHECK constraint PostgreSQL named itself: find it by what it checks.
    const checks = yield* sql<{ name: string }>`
      SELECT conname AS name FROM pg_constraint
      WHERE conrelid = 'glucose_alerts'::regclass AND contype = 'c' AND pg_get_constraintdef(oid) LIKE '%alert_type%'`
    for (const check of checks) yield* sql`ALTER TABLE glucose_alerts DROP CONSTRAINT ${sql(check.name)}`
    // Nullable: rows written before episodes keep them empty and read back through `legacyAlertFields`.
    yield* sql`ALTER TABLE glucose_alerts
      ADD COLUMN started_at timestamptz,
      ADD COLUMN ended_at timestamptz,
      ADD COLUMN extreme_value double precision,
      ADD COLUMN last_value double precision,
      ADD COLUMN last_reading_at timestamptz`
    // `get` by id (the Cassandra layer's glucose_alerts_by_id); ids derive from (sensor, start, kind), so they are unique.
    yield* sql`CREATE UNIQUE INDEX glucose_alerts_by_id ON glucose_alerts (alert_id)`
    // `listOpen` (the Cassandra layer's glucose_alerts_open): only the few open episodes, never a user's history.
    // (A literal 'SENT', as in `listOpen`: DDL takes no parameters, and the planner matches the predicate by its text.)
    yield* sql`CREATE INDEX glucose_alerts_open ON glucose_alerts (user_id)
      WHERE ended_at IS NULL AND status <> 'SENT'`
  }),
  "0003_alert_notifications": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    // Nullable, `notification_count` too: rows written before them read back as `unnotifiedAlertFields`.
    yield* sql`ALTER TABLE glucose_alerts
      ADD COLUMN acknowledged_at timestamptz,
      ADD COLUMN acknowledged_by text,
      ADD COLUMN snoozed_until timestamptz,
      ADD COLUMN notification_count integer,
      ADD COLUMN last_notified_at timestamptz,
      ADD COLUMN silenced_by text`
  })
}

const failWith = failureOf((fields) => new AlertStoreError(fields))

const AlertRow = Schema.Struct({
  user_id: Schema.String,
  timestamp: Schema.Number,
  alert_id: Schema.String,
  sensor_id: Schema.String,
  glucose_value: Schema.Number,
  alert_type: Schema.String,
  status: Schema.String,
  started_at: Schema.NullOr(Schema.Number),
  ended_at: Schema.NullOr(Schema.Number),
  extreme_value: Schema.NullOr(Schema.Number),
  last_value: Schema.NullOr(Schema.Number),
  last_reading_at: Schema.NullOr(Schema.Number),
  acknowledged_at: Schema.NullOr(Schema.Number),
  acknowledged_by: Schema.NullOr(Schema.String),
  snoozed_until: Schema.NullOr(Schema.Number),
  notification_count: Schema.NullOr(Schema.Number),
  last_notified_at: Schema.NullOr(Schema.Number),
  silenced_by: Schema.NullOr(Schema.String)
})

const toAlert = (operation: string) => (row: unknown) =>
  Schema.decodeUnknownEffect(AlertRow)(row).pipe(
    Effect.flatMap(decodeStoredAlert),
    Effect.mapError(failWith(operation))
  )

const iso = (millis: number) => new Date(millis).toISOString()

/** The embedded alert store: the Cassandra tables' shape and semantics in one PostgreSQL table. */
export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* runMigrations("alerts", migrations)

  const columns = sql`user_id, (extract(epoch FROM "timestamp") * 1000)::float8 AS "timestamp", alert_id::text AS alert_id,
    sensor_id, glucose_value, alert_type, status,
    (extract(epoch FROM started_at) * 1000)::float8 AS started_at,
    (extract(epoch FROM ended_at) * 1000)::float8 AS ended_at,
    extreme_value, last_value,
    (extract(epoch FROM last_reading_at) * 1000)::float8 AS last_reading_at,
    (extract(epoch FROM acknowledged_at) * 1000)::float8 AS acknowledged_at, acknowledged_by,
    (extract(epoch FROM snoozed_until) * 1000)::float8 AS snoozed_until, notification_count,
    (extract(epoch FROM last_notified_at) * 1000)::float8 AS last_notified_at, silenced_by`

  /**
   * One statement per batch, an upsert on the row's key: an episode written again
   * replaces its row, and an unchanged one is not even rewritten. Keys in order,
   * so two batches that share episodes take their row locks in the same order.
   */
  const save = Effect.fn("AlertStore.save")(function* (batch: ReadonlyArray<Alert>) {
    const alerts = latestPerEpisode(batch)
    if (alerts.length === 0) return
    yield* sql`INSERT INTO glucose_alerts (user_id, "timestamp", alert_id, sensor_id, glucose_value, alert_type, status,
        started_at, ended_at, extreme_value, last_value, last_reading_at,
        acknowledged_at, acknowledged_by, snoozed_until, notification_count, last_notified_at, silenced_by)
      SELECT * FROM unnest(
        ${pgArray(
          alerts.map((a) => a.user_id),
          OID.text
        )}::text[],
        ${pgArray(
          alerts.map((a) => a.timestamp),
          OID.timestamptz
        )}::timestamptz[],
        ${pgArray(
          alerts.map((a) => a.alert_id),
          OID.uuid
        )}::uuid[],
        ${pgArray(
          alerts.map((a) => a.sensor_id),
          OID.text
        )}::text[],
        ${pgArray(
          alerts.map((a) => a.glucose_value),
          OID.float8
        )}::float8[],
        ${pgArray(
          alerts.map((a) => a.alert_type),
          OID.text
        )}::text[],
        ${pgArray(
          alerts.map((a) => a.status),
          OID.text
        )}::text[],
        ${pgArray(
          alerts.map((a) => a.started_at),
          OID.timestamptz
        )}::timestamptz[],
        ${pgArray(
          alerts.map((a) => a.ended_at),
          OID.timestamptz
        )}::timestamptz[],
        ${pgArray(
          alerts.map((a) => a.extreme_value),
          OID.float8
        )}::float8[],
        ${pgArray(
          alerts.map((a) => a.last_value),
          OID.float8
        )}::float8[],
        ${pgArray(
          alerts.map((a) => a.last_reading_at),
          OID.timestamptz
        )}::timestamptz[],
        ${pgArray(
          alerts.map((a) => a.acknowledged_at),
          OID.timestamptz
        )}::timestamptz[],
        ${pgArray(
          alerts.map((a) => a.acknowledged_by),
          OID.text
        )}::text[],
        ${pgArray(
          alerts.map((a) => a.snoozed_until),
          OID.timestamptz
        )}::timestamptz[],
        ${pgArray(
          alerts.map((a) => a.notification_count),
          OID.int4
        )}::int4[],
        ${pgArray(
          alerts.map((a) => a.last_notified_at),
          OID.timestamptz
        )}::timestamptz[],
        ${pgArray(
          alerts.map((a) => a.silenced_by),
          OID.text
        )}::text[])
      ORDER BY 1, 2, 3
      ON CONFLICT (user_id, "timestamp", alert_id) DO UPDATE SET
        sensor_id = EXCLUDED.sensor_id, glucose_value = EXCLUDED.glucose_value, alert_type = EXCLUDED.alert_type,
        status = EXCLUDED.status, started_at = EXCLUDED.started_at, ended_at = EXCLUDED.ended_at,
        extreme_value = EXCLUDED.extreme_value, last_value = EXCLUDED.last_value,
        last_reading_at = EXCLUDED.last_reading_at, acknowledged_at = EXCLUDED.acknowledged_at,
        acknowledged_by = EXCLUDED.acknowledged_by, snoozed_until = EXCLUDED.snoozed_until,
        notification_count = EXCLUDED.notification_count, last_notified_at = EXCLUDED.last_notified_at,
        silenced_by = EXCLUDED.silenced_by
      WHERE (glucose_alerts.sensor_id, glucose_alerts.glucose_value, glucose_alerts.alert_type, glucose_alerts.status,
          glucose_alerts.started_at, glucose_alerts.ended_at, glucose_alerts.extreme_value, glucose_alerts.last_value,
          glucose_alerts.last_reading_at, glucose_alerts.acknowledged_at, glucose_alerts.acknowledged_by,
          glucose_alerts.snoozed_until, glucose_alerts.notification_count, glucose_alerts.last_notified_at,
          glucose_alerts.silenced_by)
        IS DISTINCT FROM (EXCLUDED.sensor_id, EXCLUDED.glucose_value, EXCLUDED.alert_type, EXCLUDED.status,
          EXCLUDED.started_at, EXCLUDED.ended_at, EXCLUDED.extreme_value, EXCLUDED.last_value,
          EXCLUDED.last_reading_at, EXCLUDED.acknowledged_at, EXCLUDED.acknowledged_by, EXCLUDED.snoozed_until,
          EXCLUDED.notification_count, EXCLUDED.last_notified_at, EXCLUDED.silenced_by)`.pipe(
      Effect.mapError(failWith("save"))
    )
  })

  /** Keyset paging on (start, alert id), newest first; the filters are part of the query, so every page is full. */
  const list = Effect.fn("AlertStore.list")(function* (query: AlertQuery) {
    const before = query.cursor === undefined ? undefined : yield* decodeAlertCursor(query.cursor)
    const rows = yield* sql`
      SELECT ${columns}
      FROM glucose_alerts
      WHERE user_id = ${query.user_id}
        AND "timestamp" >= ${iso(query.from)}::timestamptz
        AND "timestamp" < ${iso(query.to)}::timestamptz
        ${before === undefined ? sql`` : sql`AND ("timestamp", alert_id) < (${iso(before.timestamp)}::timestamptz, ${before.alert_id}::uuid)`}
        ${query.status === undefined ? sql`` : sql`AND status = ANY(${storedStatuses(query.status)}::text[])`}
        ${query.alert_type === undefined ? sql`` : sql`AND alert_type = ${query.alert_type}`}
      ORDER BY "timestamp" DESC, alert_id DESC
      LIMIT ${query.limit + 1}`.pipe(Effect.mapError(failWith("list")))
    const items = yield* Effect.forEach(rows.slice(0, query.limit), toAlert("list"))
    const last = items[items.length - 1]
    return {
      items,
      next_cursor: rows.length > query.limit && last !== undefined ? encodeAlertCursor(last) : null
    }
  })

  const get = Effect.fn("AlertStore.get")(function* (user: UserId, alertId: AlertId) {
    const rows =
      yield* sql`SELECT ${columns} FROM glucose_alerts WHERE alert_id = ${alertId}::uuid AND user_id = ${user}`.pipe(
        Effect.mapError(failWith("get"))
      )
    return rows.length === 0 ? Option.none() : Option.some(yield* toAlert("get")(rows[0]))
  })

  const listOpen = Effect.fn("AlertStore.listOpen")(function* (user: UserId) {
    const rows = yield* sql`
      SELECT ${columns} FROM glucose_alerts
      WHERE user_id = ${user} AND ended_at IS NULL AND status <> 'SENT'
      ORDER BY "timestamp" DESC, alert_id DESC`.pipe(Effect.mapError(failWith("listOpen")))
    return yield* Effect.forEach(rows, toAlert("listOpen"))
  })

  const ping = sql`SELECT 1`.pipe(Effect.asVoid, Effect.mapError(failWith("ping")))

  return AlertStore.of({ save, list, get, listOpen, ping })
})

/** The alert store on whatever PostgreSQL the `SqlClient` points at. */
export const layer = Layer.effect(AlertStore, make)
