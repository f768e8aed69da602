import { SensorId, UserId } from "@dexmon/domain"
import type cassandra from "cassandra-driver"
import { Effect, Layer, Schema } from "effect"
import {
  AlertStateConflict,
  AlertStateStore,
  AlertStateStoreError,
  type SensorStateRow,
  type SensorStateWrite
} from "./AlertStateStore.ts"
import { type CassandraConfig, CassandraSession, consistencyOf } from "./CassandraSession.ts"
import { isThisWrite, writeRounds } from "./SensorStateWrites.ts"

/**
 * State is read and written at `LOCAL_QUORUM`, or at the configured level when
 * that is stronger: a notifier that takes a partition over must read every
 * state its predecessor wrote, even where alerts are written at `ONE`.
 */
export const stateConsistency = (configured: CassandraConfig["consistency"]) =>
  configured === "ONE" || configured === "LOCAL_ONE" ? consistencyOf.LOCAL_QUORUM : consistencyOf[configured]

/** A state row; `revision` is the driver's `Long`, so the schema is made once the session has loaded the driver. */
const stateRowOf = (Long: typeof cassandra.types.Long) =>
  Schema.Struct({
    sensor_id: SensorId,
    user_id: UserId,
    log_partition: Schema.Number,
    state: Schema.String,
    check_at: Schema.NullOr(Schema.Date),
    revision: Schema.instanceOf(Long)
  })

/**
 * The alert engine's state on Apache Cassandra: `alert_sensor_state`, one
 * partition per sensor, written with lightweight transactions (`IF NOT EXISTS`
 * for a first write, `IF revision = ?` after that; Paxos at `LOCAL_SERIAL`,
 * committed at `stateConsistency`), and `alert_sensor_checks`, the sensors of
 * each log partition with their next check, which `due` reads. A Paxos round
 * covers one partition only, so a check entry is written after its state, with
 * the state's revision as its write timestamp: of two entries for a sensor the
 * one from the newer revision wins whichever arrives last. `due` confirms its
 * candidates against their states and mends an entry that a crash between
 * the two writes left behind.
 */
export const make = Effect.gen(function* () {
  const session = yield* CassandraSession
  const { config } = session
  const { types } = session.driver
  const StateRow = stateRowOf(types.Long)
  const long = (value: number) => types.Long.fromNumber(value)
  const { failWith, run, runAll } = session.runner((fields) => new AlertStateStoreError(fields))
  const stateTable = `${config.keyspace}.alert_sensor_state`
  const checksTable = `${config.keyspace}.alert_sensor_checks`
  const consistency = stateConsistency(config.consistency)
  const conditional = { consistency, serialConsistency: consistencyOf.LOCAL_SERIAL, isIdempotent: false }

  yield* run(
    "create table",
    `CREATE TABLE IF NOT EXISTS ${stateTable} (
      sensor_id text PRIMARY KEY, user_id text, log_partition int, state text, check_at timestamp, revision bigint
    )`
  )
  yield* run(
    "create table",
    `CREATE TABLE IF NOT EXISTS ${checksTable} (
      log_partition int, sensor_id text, check_at timestamp,
      PRIMARY KEY ((log_partition), sensor_id)
    )`
  )

  const selectState = `SELECT sensor_id, user_id, log_partition, state, check_at, revision FROM ${stateTable}
    WHERE sensor_id = ?`
  const insertState = `INSERT INTO ${stateTable} (sensor_id, user_id, log_partition, state, check_at, revision)
    VALUES (?, ?, ?, ?, ?, 1) IF NOT EXISTS`
  const updateState = `UPDATE ${stateTable} SET user_id = ?, log_partition = ?, state = ?, check_at = ?, revision = ?
    WHERE sensor_id = ? IF revision = ?`
  const upsertCheck = `INSERT INTO ${checksTable} (log_partition, sensor_id, check_at) VALUES (?, ?, ?) USING TIMESTAMP ?`
  const deleteCheck = `DELETE FROM ${checksTable} USING TIMESTAMP ? WHERE log_partition = ? AND sensor_id = ?`

  /** One sensor's state; a serial read also completes a conditional write still in flight. */
  const readState = (sensorId: string, options: cassandra.QueryOptions) =>
    run("load", selectState, [sensorId], options).pipe(
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
                  revision: r.revision.toNumber()
                })
              ),
              Effect.mapError(failWith("load"))
            )
      })
    )

  /** The check entry of a state at a revision: later revisions overwrite it, earlier ones never do. */
  const writeCheck = (
    operation: string,
    logPartition: number,
    sensorId: string,
    checkAt: number | null,
    revision: number
  ) =>
    run(
      operation,
      checkAt === null ? deleteCheck : upsertCheck,
      checkAt === null
        ? [long(revision), logPartition, sensorId]
        : [logPartition, sensorId, new Date(checkAt), long(revision)],
      { consistency, isIdempotent: true }
    )

  const load = Effect.fn("AlertStateStore.load")(function* (sensorIds: ReadonlyArray<SensorId>) {
    const rows = yield* Effect.forEach([...new Set(sensorIds)], (sensorId) => readState(sensorId, { consistency }), {
      concurrency: config.writeConcurrency
    })
    return new Map<SensorId, SensorStateRow>(rows.filter((row) => row !== undefined).map((row) => [row.sensor_id, row]))
  })

  /**
   * One conditional write; whether it was written. When the condition fails,
   * the stored row is read serially: it may be this very write (a retry of one
   * whose acknowledgement was lost), and its check entry is mended either way.
   */
  const applyWrite = Effect.fnUntraced(function* (write: SensorStateWrite) {
    const { row, expected_revision: expected } = write
    const checkAt = row.check_at === null ? null : new Date(row.check_at)
    const result =
      expected === 0
        ? yield* run(
            "save",
            insertState,
            [row.sensor_id, row.user_id, row.log_partition, row.state, checkAt],
            conditional
          )
        : yield* run(
            "save",
            updateState,
            [row.user_id, row.log_partition, row.state, checkAt, long(expected + 1), row.sensor_id, long(expected)],
            conditional
          )
    if (result.first()?.["[applied]"] === true) {
      yield* writeCheck("save", row.log_partition, row.sensor_id, row.check_at, expected + 1)
      return true
    }
    const stored = yield* readState(row.sensor_id, { consistency: consistencyOf.LOCAL_SERIAL })
    if (stored === undefined) return false
    yield* writeCheck("save", stored.log_partition, stored.sensor_id, stored.check_at, stored.revision)
    return isThisWrite(stored, write)
  })

  const save = Effect.fn("AlertStateStore.save")(function* (writes: ReadonlyArray<SensorStateWrite>) {
    const conflicts: Array<string> = []
    for (const round of writeRounds(writes)) {
      const written = yield* Effect.forEach(round, applyWrite, { concurrency: config.writeConcurrency })
      round.forEach((write, i) => {
        if (!written[i]) conflicts.push(write.row.sensor_id)
      })
    }
    if (conflicts.length > 0) return yield* new AlertStateConflict({ sensor_ids: [...new Set(conflicts)].sort() })
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
            writeCheck("due", state.log_partition, state.sensor_id, state.check_at, state.revision),
            ...(state.log_partition === logPartition
              ? []
              : [writeCheck("due", logPartition, state.sensor_id, null, state.revision)])
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
