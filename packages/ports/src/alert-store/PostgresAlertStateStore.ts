import { SensorId, UserId } from "@dexmon/domain"
import { Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { runMigrations } from "../postgres/Migrations.ts"
import { OID, pgArray } from "../postgres/PgArrays.ts"
import { failureOf } from "../StoreFailure.ts"
import {
  AlertStateConflict,
  AlertStateStore,
  AlertStateStoreError,
  type SensorStateRow,
  type SensorStateWrite
} from "./AlertStateStore.ts"
import { writeRounds } from "./SensorStateWrites.ts"

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
  })
}

const failWith = failureOf((fields) => new AlertStateStoreError(fields))

const StateRow = Schema.Struct({
  sensor_id: SensorId,
  user_id: UserId,
  log_partition: Schema.Number,
  state: Schema.String,
  check_at: Schema.NullOr(Schema.Number),
  revision: Schema.Number
})

/** The alert engine's sensor states in a PostgreSQL table, written conditionally on their revision. */
export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* runMigrations("alert_state", migrations)

  const load = Effect.fn("AlertStateStore.load")(function* (sensorIds: ReadonlyArray<SensorId>) {
    const rows = yield* sql`
      SELECT sensor_id, user_id, log_partition, state,
        (extract(epoch FROM check_at) * 1000)::float8 AS check_at, revision::float8 AS revision
      FROM alert_sensor_state WHERE sensor_id = ANY(${[...new Set(sensorIds)]}::text[])`.pipe(
      Effect.mapError(failWith("load"))
    )
    const decoded = yield* Schema.decodeUnknownEffect(Schema.Array(StateRow))(rows).pipe(
      Effect.mapError(failWith("load"))
    )
    return new Map<SensorId, SensorStateRow>(decoded.map((row) => [row.sensor_id, row]))
  })

  /**
   * One statement for a round: new rows (expected revision 0) are inserted unless
   * a row exists, the others updated only while at their expected revision.
   * Rows are locked in sensor order first (and inserted in that order), so two
   * writers of overlapping batches queue behind each other instead of
   * deadlocking; the one that waited re-checks the revision on the row the
   * other committed (READ COMMITTED), so of two writers expecting the same
   * revision exactly one applies. A sensor whose stored row already is this
   * very write (a retry of a write that went through) counts as written.
   * Returns the sensors that were not written.
   */
  const saveRound = (writes: ReadonlyArray<SensorStateWrite>) =>
    sql<{ sensor_id: string }>`
      WITH input AS (
        SELECT * FROM unnest(
          ${pgArray(
            writes.map((w) => w.row.sensor_id),
            OID.text
          )}::text[],
          ${pgArray(
            writes.map((w) => w.row.user_id),
            OID.text
          )}::text[],
          ${pgArray(
            writes.map((w) => w.row.log_partition),
            OID.int4
          )}::int[],
          ${pgArray(
            writes.map((w) => w.row.state),
            OID.text
          )}::text[],
          ${pgArray(
            writes.map((w) => w.row.check_at),
            OID.timestamptz
          )}::timestamptz[],
          ${pgArray(
            writes.map((w) => BigInt(w.expected_revision)),
            OID.int8
          )}::bigint[]
        ) AS t(sensor_id, user_id, log_partition, state, check_at, expected)
      ),
      locked AS MATERIALIZED (
        SELECT sensor_id FROM alert_sensor_state
        WHERE sensor_id = ANY(${writes.filter((w) => w.expected_revision > 0).map((w) => w.row.sensor_id)}::text[])
        ORDER BY sensor_id
        FOR UPDATE
      ),
      inserted AS (
        INSERT INTO alert_sensor_state (sensor_id, user_id, log_partition, state, check_at, revision)
        SELECT sensor_id, user_id, log_partition, state, check_at, 1 FROM input WHERE expected = 0
        ORDER BY sensor_id
        ON CONFLICT (sensor_id) DO NOTHING
        RETURNING sensor_id
      ),
      updated AS (
        UPDATE alert_sensor_state AS s
        SET user_id = i.user_id, log_partition = i.log_partition, state = i.state, check_at = i.check_at,
          revision = i.expected + 1, updated_at = now()
        FROM input AS i JOIN locked USING (sensor_id)
        WHERE i.expected > 0 AND s.sensor_id = i.sensor_id AND s.revision = i.expected
        RETURNING s.sensor_id
      ),
      already AS (
        SELECT s.sensor_id FROM alert_sensor_state AS s JOIN input AS i USING (sensor_id)
        WHERE s.revision = i.expected + 1 AND s.user_id = i.user_id AND s.log_partition = i.log_partition
          AND s.state = i.state AND s.check_at IS NOT DISTINCT FROM i.check_at
      )
      SELECT sensor_id FROM input
      EXCEPT SELECT sensor_id FROM inserted
      EXCEPT SELECT sensor_id FROM updated
      EXCEPT SELECT sensor_id FROM already`.pipe(
      Effect.map((rows) => rows.map((row) => row.sensor_id)),
      Effect.mapError(failWith("save"))
    )

  const save = Effect.fn("AlertStateStore.save")(function* (writes: ReadonlyArray<SensorStateWrite>) {
    const conflicts: Array<string> = []
    for (const round of writeRounds(writes)) conflicts.push(...(yield* saveRound(round)))
    if (conflicts.length > 0) return yield* new AlertStateConflict({ sensor_ids: [...new Set(conflicts)].sort() })
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
