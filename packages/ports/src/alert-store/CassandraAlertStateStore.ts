import { SensorId, UserId } from "@dexmon/domain"
import type cassandra from "cassandra-driver"
import { Effect, Layer, Schema } from "effect"
import { AlertStateStore, AlertStateStoreError, type SensorStateRow } from "./AlertStateStore.ts"
import { type CassandraConfig, CassandraSession, consistencyOf } from "./CassandraSession.ts"
import { newestPerSensor } from "./SensorStateVersion.ts"

/**
 * State is read and written at `LOCAL_QUORUM`, or at the configured level when
 * that is stronger: a notifier that takes a partition over must read every
 * state its predecessor wrote, even where alerts are written at `ONE`.
 */
export const stateConsistency = (configured: CassandraConfig["consistency"]) =>
  configured === "ONE" || configured === "LOCAL_ONE" ? consistencyOf.LOCAL_QUORUM : consistencyOf[configured]

/**
 * A state row; its version (the write timestamp, or a former table's
 * revision) is the driver's `Long`, so the schema is made once the session
 * has loaded the driver.
 */
const stateRowOf = (Long: typeof cassandra.types.Long) =>
  Schema.Struct({
    sensor_id: SensorId,
    user_id: UserId,
    log_partition: Schema.Number,
    state: Schema.String,
    check_at: Schema.NullOr(Schema.Date),
    version: Schema.instanceOf(Long)
  })

/**
 * The alert engine's state on Apache Cassandra: `alert_sensor_states`, one
 * partition per sensor, each row written whole with its version as the write
 * timestamp (so of two writes the higher version wins, in whatever order they
 * arrive), and `alert_sensor_checks`, the sensors of each log partition with
 * their next check, which `due` reads, written just before the state with the
 * same timestamp. `due` confirms its candidates against their states and
 * mends an entry a crash left behind.
 *
 * Before, states were written with lightweight transactions to
 * `alert_sensor_state` (a revision checked by Paxos); where that table exists
 * a sensor not yet in the new one is read from it, its revision standing for
 * its version (every new version is higher), so an upgrade keeps every open
 * episode. Its notifiers are to be stopped before this release's start: the
 * two would not see each other's writes.
 */
export const make = Effect.gen(function* () {
  const session = yield* CassandraSession
  const { config } = session
  const { types } = session.driver
  const StateRow = stateRowOf(types.Long)
  const long = (value: bigint) => types.Long.fromString(value.toString())
  const { failWith, run, runAll } = session.runner((fields) => new AlertStateStoreError(fields))
  const stateTable = `${config.keyspace}.alert_sensor_states`
  const formerStateTable = `${config.keyspace}.alert_sensor_state`
  const checksTable = `${config.keyspace}.alert_sensor_checks`
  const consistency = stateConsistency(config.consistency)
  const write = { consistency, isIdempotent: true }

  yield* run(
    "create table",
    `CREATE TABLE IF NOT EXISTS ${stateTable} (
      sensor_id text PRIMARY KEY, user_id text, log_partition int, state text, check_at timestamp
    )`
  )
  yield* run(
    "create table",
    `CREATE TABLE IF NOT EXISTS ${checksTable} (
      log_partition int, sensor_id text, check_at timestamp,
      PRIMARY KEY ((log_partition), sensor_id)
    )`
  )
  const formerTableExists = yield* run(
    "find former table",
    "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ? AND table_name = 'alert_sensor_state'",
    [config.keyspace]
  ).pipe(Effect.map((result) => result.rowLength > 0))

  const selectState = `SELECT sensor_id, user_id, log_partition, state, check_at, writetime(state) AS version
    FROM ${stateTable} WHERE sensor_id = ?`
  const selectFormerState = `SELECT sensor_id, user_id, log_partition, state, check_at, revision AS version
    FROM ${formerStateTable} WHERE sensor_id = ?`
  const insertState = `INSERT INTO ${stateTable} (sensor_id, user_id, log_partition, state, check_at)
    VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?`
  const upsertCheck = `INSERT INTO ${checksTable} (log_partition, sensor_id, check_at) VALUES (?, ?, ?) USING TIMESTAMP ?`
  const deleteCheck = `DELETE FROM ${checksTable} USING TIMESTAMP ? WHERE log_partition = ? AND sensor_id = ?`

  /** One sensor's state in a table. */
  const readStateFrom = (query: string, sensorId: string) =>
    run("load", query, [sensorId], { consistency }).pipe(
      Effect.flatMap((result) => {
        const row = result.first()
        return row === null
          ? Effect.succeed(undefined)
          : Schema.decodeUnknownEffect(StateRow)(row).pipe(
              Effect.map(
                (r): SensorStateRow => ({
                  sensor_id: r.sensor_id,
                  user_id: r.user_id,
                  log_partition: r.log_partition,
                  state: r.state,
                  check_at: r.check_at === null ? null : r.check_at.getTime(),
                  version: BigInt(r.version.toString())
                })
              ),
              Effect.mapError(failWith("load"))
            )
      })
    )

  /** One sensor's state: from the state table, or where it has none yet, from the former table. */
  const readState = (sensorId: string) =>
    readStateFrom(selectState, sensorId).pipe(
      Effect.flatMap((row) =>
        row === undefined && formerTableExists ? readStateFrom(selectFormerState, sensorId) : Effect.succeed(row)
      )
    )

  /** The check entry of a state at a version: later versions overwrite it, earlier ones never do. */
  const writeCheck = (
    operation: string,
    logPartition: number,
    sensorId: string,
    checkAt: number | null,
    version: bigint
  ) =>
    run(
      operation,
      checkAt === null ? deleteCheck : upsertCheck,
      checkAt === null
        ? [long(version), logPartition, sensorId]
        : [logPartition, sensorId, new Date(checkAt), long(version)],
      write
    )

  const load = Effect.fn("AlertStateStore.load")(function* (sensorIds: ReadonlyArray<SensorId>) {
    const rows = yield* Effect.forEach([...new Set(sensorIds)], readState, {
      concurrency: config.writeConcurrency
    })
    return new Map<SensorId, SensorStateRow>(rows.filter((row) => row !== undefined).map((row) => [row.sensor_id, row]))
  })

  /**
   * A check entry, then its state, both at the state's version; idempotent, so a write whose answer was lost
   * is retried. In this order a crash between the two leaves an entry newer than its state, which `due`
   * passes over until the redelivered batch writes the state; the other way round, a batch redelivered after
   * its state was written changes nothing, and the check entry it missed would never be written.
   */
  const writeState = (row: SensorStateRow) =>
    writeCheck("save", row.log_partition, row.sensor_id, row.check_at, row.version).pipe(
      Effect.andThen(
        run(
          "save",
          insertState,
          [
            row.sensor_id,
            row.user_id,
            row.log_partition,
            row.state,
            row.check_at === null ? null : new Date(row.check_at),
            long(row.version)
          ],
          write
        )
      )
    )

  const save = Effect.fn("AlertStateStore.save")(function* (rows: ReadonlyArray<SensorStateRow>) {
    yield* Effect.forEach(newestPerSensor(rows), writeState, { concurrency: config.writeConcurrency, discard: true })
  })

  /**
   * The check entries of the partition that are due, confirmed against their
   * states (an entry can be older than its state when a writer died between
   * the two writes); an entry that no longer matches is rewritten from the state.
   */
  const due = Effect.fn("AlertStateStore.due")(function* (logPartition: number, now: number) {
    const entries = yield* runAll(
      "due",
      `SELECT sensor_id FROM ${checksTable} WHERE log_partition = ? AND check_at <= ? ALLOW FILTERING`,
      [logPartition, new Date(now)],
      { consistency, fetchSize: 5_000 }
    )
    const candidates = yield* Schema.decodeUnknownEffect(Schema.Array(Schema.Struct({ sensor_id: SensorId })))(
      entries
    ).pipe(Effect.mapError(failWith("due")))
    const states = yield* load(candidates.map((entry) => entry.sensor_id))
    const dueStates: Array<SensorStateRow> = []
    yield* Effect.forEach(
      states.values(),
      (state) => {
        if (state.log_partition === logPartition && state.check_at !== null && state.check_at <= now) {
          dueStates.push(state)
          return Effect.void
        }
        return Effect.all(
          [
            writeCheck("due", state.log_partition, state.sensor_id, state.check_at, state.version),
            ...(state.log_partition === logPartition
              ? []
              : [writeCheck("due", logPartition, state.sensor_id, null, state.version)])
          ],
          { discard: true }
        )
      },
      { concurrency: config.writeConcurrency, discard: true }
    )
    return dueStates
      .sort((a, b) => a.check_at! - b.check_at! || (a.sensor_id < b.sensor_id ? -1 : a.sensor_id > b.sensor_id ? 1 : 0))
      .map((state) => state.sensor_id)
  })

  const ping = run("ping", "SELECT release_version FROM system.local").pipe(Effect.asVoid)

  return AlertStateStore.of({ load, save, due, ping })
})

/** The alert engine's state on the Cassandra cluster `CASSANDRA_CONTACT_POINTS` names, on the alert store's session. */
export const layer = Layer.effect(AlertStateStore, make).pipe(Layer.provide(CassandraSession.layer))
