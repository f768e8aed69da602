import { SensorId, UserId } from "@dexmon/domain"
import { Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { runMigrations } from "../postgres/Migrations.ts"
import { OID, pgArray } from "../postgres/PgArrays.ts"
import { failureOf } from "../StoreFailure.ts"
import { AlertStateStore, AlertStateStoreError, type SensorStateRow } from "./AlertStateStore.ts"
import { newestPerSensor } from "./SensorStateVersion.ts"

const migrations = {
  "0001_alert_sensor_state": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE alert_sensor_state (
      sensor_id text PRIMARY KEY,
      user_id text NOT NULL,
      log_partition integer NOT NULL,
      state text NOT NULL,
      check_at timestamptz,
      revision bigint NOT NULL,
      updated_at timestamptz NOT NULL DEFAULT now()
    )`
    // `due`: the sensors of one partition in check order; a sensor that needs no tick is not in the index.
    yield* sql`CREATE INDEX alert_sensor_state_checks ON alert_sensor_state (log_partition, check_at)
      WHERE check_at IS NOT NULL`
  }),
  // Writes became last-write-wins by version. Every version is at least 2^23, above any revision a
  // conditional write counted to, so the rows kept from then are older than any state written now.
  "0002_alert_sensor_state_version": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE alert_sensor_state RENAME COLUMN revision TO version`
  })
}

const failWith = failureOf((fields) => new AlertStateStoreError(fields))

const StateRow = Schema.Struct({
  sensor_id: SensorId,
  user_id: UserId,
  log_partition: Schema.Number,
  state: Schema.String,
  check_at: Schema.NullOr(Schema.Number),
  version: Schema.String
})

/** The alert engine's sensor states in a PostgreSQL table, last-write-wins by version. */
export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* runMigrations("alert_state", migrations)

  const load = Effect.fn("AlertStateStore.load")(function* (sensorIds: ReadonlyArray<SensorId>) {
    const rows = yield* sql`
      SELECT sensor_id, user_id, log_partition, state,
        (extract(epoch FROM check_at) * 1000)::float8 AS check_at, version::text AS version
      FROM alert_sensor_state WHERE sensor_id = ANY(${[...new Set(sensorIds)]}::text[])`.pipe(
      Effect.mapError(failWith("load"))
    )
    const decoded = yield* Schema.decodeUnknownEffect(Schema.Array(StateRow))(rows).pipe(
      Effect.mapError(failWith("load"))
    )
    return new Map<SensorId, SensorStateRow>(
      decoded.map((row) => [row.sensor_id, { ...row, version: BigInt(row.version) }])
    )
  })

  /**
   * One statement: each sensor's newest row, inserted, or written over a
   * stored row of a lower version. Rows are taken in sensor order, so two
   * writers of overlapping batches queue behind each other instead of
   * deadlocking; the one that waited compares versions with the row the other
   * committed.
   */
  const save = Effect.fn("AlertStateStore.save")(function* (rows: ReadonlyArray<SensorStateRow>) {
    if (rows.length === 0) return
    const newest = newestPerSensor(rows)
    yield* sql`
      INSERT INTO alert_sensor_state (sensor_id, user_id, log_partition, state, check_at, version)
      SELECT * FROM unnest(
        ${pgArray(
          newest.map((r) => r.sensor_id),
          OID.text
        )}::text[],
        ${pgArray(
          newest.map((r) => r.user_id),
          OID.text
        )}::text[],
        ${pgArray(
          newest.map((r) => r.log_partition),
          OID.int4
        )}::int[],
        ${pgArray(
          newest.map((r) => r.state),
          OID.text
        )}::text[],
        ${pgArray(
          newest.map((r) => r.check_at),
          OID.timestamptz
        )}::timestamptz[],
        ${pgArray(
          newest.map((r) => r.version),
          OID.int8
        )}::bigint[]
      ) AS t(sensor_id, user_id, log_partition, state, check_at, version)
      ORDER BY sensor_id
      ON CONFLICT (sensor_id) DO UPDATE SET
        user_id = excluded.user_id, log_partition = excluded.log_partition, state = excluded.state,
        check_at = excluded.check_at, version = excluded.version, updated_at = now()
      WHERE alert_sensor_state.version < excluded.version`.pipe(Effect.mapError(failWith("save")))
  })

  const due = Effect.fn("AlertStateStore.due")(function* (logPartition: number, now: number) {
    const rows = yield* sql`
      SELECT sensor_id FROM alert_sensor_state
      WHERE log_partition = ${logPartition} AND check_at IS NOT NULL
        AND check_at <= ${new Date(now).toISOString()}::timestamptz
      ORDER BY check_at, sensor_id`.pipe(Effect.mapError(failWith("due")))
    const decoded = yield* Schema.decodeUnknownEffect(Schema.Array(Schema.Struct({ sensor_id: SensorId })))(rows).pipe(
      Effect.mapError(failWith("due"))
    )
    return decoded.map((row) => row.sensor_id)
  })

  const ping = sql`SELECT 1`.pipe(Effect.asVoid, Effect.mapError(failWith("ping")))

  return AlertStateStore.of({ load, save, due, ping })
})

/** The alert engine's state on whatever PostgreSQL the `SqlClient` points at. */
export const layer = Layer.effect(AlertStateStore, make)
