import { Alert } from "@dexmon/domain"
import { Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { decodeCursor, encodeCursor } from "../Cursor.ts"
import { runMigrations } from "../postgres/Migrations.ts"
import { failureOf } from "../StoreFailure.ts"
import { type AlertQuery, AlertStore, AlertStoreError } from "./AlertStore.ts"

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
  })
}

const failWith = failureOf((fields) => new AlertStoreError(fields))

const AlertRow = Schema.Struct({
  user_id: Schema.String,
  timestamp_ms: Schema.Number,
  alert_id: Schema.String,
  sensor_id: Schema.String,
  glucose_value: Schema.Number,
  alert_type: Schema.String,
  status: Schema.String
})

/** The embedded alert store: the Cassandra table's shape and semantics in PostgreSQL. */
export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* runMigrations("alerts", migrations)

  const save = Effect.fn("AlertStore.save")(function* (alerts: ReadonlyArray<Alert>) {
    if (alerts.length === 0) return
    // Same key, same content: a replayed alert writes nothing new, as a Cassandra upsert would.
    yield* sql`INSERT INTO glucose_alerts (user_id, "timestamp", alert_id, sensor_id, glucose_value, alert_type, status)
      SELECT * FROM unnest(
        ${alerts.map((a) => a.user_id)}::text[],
        ${alerts.map((a) => new Date(a.timestamp).toISOString())}::timestamptz[],
        ${alerts.map((a) => a.alert_id)}::uuid[],
        ${alerts.map((a) => a.sensor_id)}::text[],
        ${alerts.map((a) => a.glucose_value)}::float8[],
        ${alerts.map((a) => a.alert_type)}::text[],
        ${alerts.map((a) => a.status)}::text[])
      ON CONFLICT (user_id, "timestamp", alert_id) DO NOTHING`.pipe(Effect.mapError(failWith("save")))
  })

  const list = Effect.fn("AlertStore.list")(function* (query: AlertQuery) {
    const before = query.cursor === undefined ? undefined : yield* decodeCursor(query.cursor, ["number", "string"])
    const rows = yield* sql`
      SELECT user_id, (extract(epoch FROM "timestamp") * 1000)::float8 AS timestamp_ms, alert_id::text AS alert_id,
        sensor_id, glucose_value, alert_type, status
      FROM glucose_alerts
      WHERE user_id = ${query.user_id}
        AND "timestamp" >= ${new Date(query.from).toISOString()}::timestamptz
        AND "timestamp" < ${new Date(query.to).toISOString()}::timestamptz
        ${before === undefined ? sql`` : sql`AND ("timestamp", alert_id) < (${new Date(before[0]).toISOString()}::timestamptz, ${before[1]}::uuid)`}
      ORDER BY "timestamp" DESC, alert_id DESC
      LIMIT ${query.limit + 1}`.pipe(Effect.mapError(failWith("list")))
    const items = yield* Effect.forEach(rows.slice(0, query.limit), (row) =>
      Schema.decodeUnknownEffect(AlertRow)(row).pipe(
        Effect.flatMap((r) =>
          Schema.decodeUnknownEffect(Alert)({
            alert_id: r.alert_id,
            user_id: r.user_id,
            sensor_id: r.sensor_id,
            timestamp: new Date(r.timestamp_ms).toISOString(),
            glucose_value: r.glucose_value,
            alert_type: r.alert_type,
            status: r.status
          })
        )
      )
    ).pipe(Effect.mapError(failWith("list")))
    const last = items[items.length - 1]
    return {
      items,
      next_cursor:
        rows.length > query.limit && last !== undefined ? encodeCursor([last.timestamp, last.alert_id]) : null
    }
  })

  const ping = sql`SELECT 1`.pipe(Effect.asVoid, Effect.mapError(failWith("ping")))

  return AlertStore.of({ save, list, ping })
})

/** The alert store on whatever PostgreSQL the `SqlClient` points at. */
export const layer = Layer.effect(AlertStore, make)
