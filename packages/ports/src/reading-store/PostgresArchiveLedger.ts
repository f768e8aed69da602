import type { EventId, SensorId, SensorLimit, Source, UserId } from "@dexmon/domain"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Option, Schema, Semaphore } from "effect"
import { SqlClient, type SqlError } from "effect/sql"
import { runMigrations } from "../postgres/Migrations.ts"
import { OID, pgArray } from "../postgres/PgArrays.ts"
import { failureOf } from "../StoreFailure.ts"
import {
  type ArchivableDay,
  type ArchiveCommit,
  ArchiveConflict,
  type ArchivedObject,
  type ArchiveFold,
  ArchiveLedger,
  ArchiveLedgerError,
  ArchiverBusy,
  type ArchiverLease,
  ArchiverLeaseLost,
  type DueDay,
  type GroupCommitted,
  type LateEvent,
  type ReadingRecord
} from "./ArchiveLedger.ts"
import { ReadingStore } from "./ReadingStore.ts"
import {
  ARCHIVED_DAY_LOCK,
  ARCHIVER_LOCK,
  chooseBackend,
  lockPartitions,
  monthPartitionRange
} from "./ReadingsSchema.ts"

const migrations = {
  "0001_archive_objects": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE archive_objects (
      key text PRIMARY KEY,
      day date NOT NULL,
      user_id text NOT NULL,
      row_count integer NOT NULL,
      checksum text NOT NULL,
      first_timestamp timestamptz NOT NULL,
      last_timestamp timestamptz NOT NULL,
      state text NOT NULL CHECK (state IN ('pending', 'committed')),
      manifested boolean NOT NULL DEFAULT false,
      begun_at timestamptz NOT NULL DEFAULT now(),
      committed_at timestamptz
    )`
    yield* sql`CREATE INDEX archive_objects_by_user ON archive_objects (user_id, first_timestamp)
      WHERE state = 'committed'`
    yield* sql`CREATE INDEX archive_objects_unmanifested ON archive_objects (day)
      WHERE state = 'committed' AND NOT manifested`
  }),
  "0002_archiver_lease": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    // One row: the fencing token of the newest archiver run, and who took it (for an operator's eyes only).
    yield* sql`CREATE TABLE archiver_lease (
      id boolean PRIMARY KEY DEFAULT true CHECK (id),
      token bigint NOT NULL,
      holder text NOT NULL,
      acquired_at timestamptz NOT NULL
    )`
    yield* sql`INSERT INTO archiver_lease (id, token, holder, acquired_at) VALUES (true, 0, 'nobody yet', now())`
  }),
  // Folding late events replaces objects: the replaced ones are `retired` until their bytes are removed.
  // The days archived before late events were routed are marked archived as far as their objects reach.
  "0003_late_events": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE archive_objects DROP CONSTRAINT archive_objects_state_check`
    yield* sql`ALTER TABLE archive_objects ADD CONSTRAINT archive_objects_state_check
      CHECK (state IN ('pending', 'committed', 'retired'))`
    yield* sql`INSERT INTO glucose_archived_days (user_id, day, archived_through)
      SELECT user_id, day, max(last_timestamp) FROM archive_objects WHERE state = 'committed' GROUP BY user_id, day
      ON CONFLICT (user_id, day) DO UPDATE SET
        archived_through = greatest(glucose_archived_days.archived_through, EXCLUDED.archived_through)`
  }),
  // The sensors of each object, so a read filtered by sensor skips the objects without it unread. Objects
  // committed before stay NULL: readers fall back to the objects' Parquet statistics for those.
  "0004_object_sensors": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE archive_objects ADD COLUMN sensor_ids text[]`
  })
}

const failWith = failureOf((fields) => new ArchiveLedgerError(fields))

/** Inside a group commit: rows of these entries changed or vanished, so the transaction is rolled back. */
class RowsChanged extends Schema.TaggedError<RowsChanged>()("RowsChanged", {
  conflicts: Schema.Array(ArchiveConflict)
}) {}

export { ARCHIVER_LOCK } from "./ReadingsSchema.ts"

const iso = (millis: number) => new Date(millis).toISOString()

interface ObjectRow {
  readonly key: string
  readonly day: string
  readonly user_id: string
  readonly row_count: number
  readonly checksum: string
  readonly first_ms: number
  readonly last_ms: number
  readonly sensor_ids: ReadonlyArray<string> | null
}
const toObject = (row: ObjectRow): ArchivedObject => ({
  key: row.key,
  day: row.day,
  user_id: row.user_id as UserId,
  row_count: Number(row.row_count),
  checksum: row.checksum,
  first_timestamp: Number(row.first_ms),
  last_timestamp: Number(row.last_ms),
  ...(row.sensor_ids === null ? {} : { sensor_ids: row.sensor_ids as ReadonlyArray<SensorId> })
})

/** The sensors column's value for an object: NULL when they are unknown. */
const sensorsOf = (object: ArchivedObject) => (object.sensor_ids === undefined ? null : [...object.sensor_ids])

/** A row selected with `recordColumns`. */
export interface ReadingRecordRow {
  readonly id: string
  readonly sensor_id: string
  readonly user_id: string
  readonly timestamp_ms: number
  readonly glucose_value: number
  readonly source: string
  readonly sensor_limit: string | null
  readonly version: number
  readonly etag: string
  readonly created_ms: number
  readonly updated_ms: number
  readonly event_id: string
  readonly event_partition: number | null
  readonly event_offset: string | null
}

/** The columns of `glucose_readings` that make a `ReadingRecord`, instants as epoch milliseconds. */
export const recordColumns = (sql: SqlClient.SqlClient) =>
  sql.literal(`id::text AS id, sensor_id, user_id, (extract(epoch FROM "timestamp") * 1000)::float8 AS timestamp_ms,
    glucose_value, source, sensor_limit, version, etag,
    -- whole milliseconds, as the API and the archive's TIMESTAMP_MILLIS columns carry them (now() has microseconds)
    floor(extract(epoch FROM created_at) * 1000)::float8 AS created_ms,
    floor(extract(epoch FROM updated_at) * 1000)::float8 AS updated_ms,
    event_id::text AS event_id, event_partition, event_offset::text AS event_offset`)

export const toReadingRecord = (row: ReadingRecordRow): ReadingRecord => ({
  id: row.id,
  sensor_id: row.sensor_id as SensorId,
  user_id: row.user_id as UserId,
  timestamp: Number(row.timestamp_ms),
  glucose_value: Number(row.glucose_value),
  source: row.source as Source,
  ...(row.sensor_limit === null ? {} : { sensor_limit: row.sensor_limit as SensorLimit }),
  version: Number(row.version),
  etag: row.etag,
  created_at: Number(row.created_ms),
  updated_at: Number(row.updated_ms),
  event_id: row.event_id as EventId,
  position:
    row.event_partition === null || row.event_offset === null
      ? undefined
      : { partition: Number(row.event_partition), offset: Number(row.event_offset) }
})

interface LateEventRow {
  readonly event_id: string
  readonly id: string
  readonly sensor_id: string
  readonly user_id: string
  readonly timestamp_ms: number
  readonly glucose_value: number
  readonly source: string
  readonly sensor_limit: string | null
  readonly event_partition: number | null
  readonly event_offset: string | null
  readonly received_ms: number
}
const toLateEvent = (row: LateEventRow): LateEvent => ({
  event_id: row.event_id as EventId,
  id: row.id,
  sensor_id: row.sensor_id as SensorId,
  user_id: row.user_id as UserId,
  timestamp: Number(row.timestamp_ms),
  glucose_value: Number(row.glucose_value),
  source: row.source as Source,
  ...(row.sensor_limit === null ? {} : { sensor_limit: row.sensor_limit as SensorLimit }),
  position:
    row.event_partition === null || row.event_offset === null
      ? undefined
      : { partition: Number(row.event_partition), offset: Number(row.event_offset) },
  received_at: Number(row.received_ms)
})

/**
 * The archive ledger in the readings database: the `archive_objects` table,
 * and the removal of archived rows from `glucose_readings` in the transaction
 * that commits their object.
 */
export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  // The readings table must exist first: requiring the store orders the two layers' migrations.
  yield* ReadingStore
  yield* runMigrations("archive_ledger", migrations)
  // The store has laid the table out by now: this reads which way.
  const backend = yield* chooseBackend("detect").pipe(Effect.orDie)

  const objectColumns = sql.literal(`key, to_char(day, 'YYYY-MM-DD') AS day, user_id, row_count, checksum,
    (extract(epoch FROM first_timestamp) * 1000)::float8 AS first_ms,
    (extract(epoch FROM last_timestamp) * 1000)::float8 AS last_ms, sensor_ids`)

  // A pool of one connection (`DEXMON_PG_POOL_SIZE=1`, for a server that serves one session at a time such as
  // PGlite) has no second connection to reserve for the lock: the run's work would wait on it forever.
  const pool: Option.Option<PgClient.PgPoolConfig> = Option.map(
    yield* Effect.serviceOption(PgClient.PgClient),
    (pg) => pg.config
  )
  const oneSession = Option.exists(pool, (config) => (config.maxConnections ?? 10) === 1)
  // Session advisory locks nest within a session: on the one session a second run of this process would take
  // the lock again, so the process keeps its own runs one at a time there.
  const runsHere = yield* Semaphore.make(1)

  /**
   * The session the run lock lives on, as a way to run a statement on it. Normally a connection reserved for
   * the run, so the lock lives exactly as long as that session, whatever the pool does meanwhile. On a pool of
   * one it is the pool's only session, which the run's work then uses too; should the pool replace that
   * connection (closed when idle, or given up at a deadline), the lock goes with it, as when a reserved lock
   * connection dies, and the lease's token fences the run as it does then.
   */
  const lockSession = oneSession
    ? Effect.succeed((statement: string, params: ReadonlyArray<unknown>) => sql.unsafe(statement, params))
    : Effect.map(
        sql.reserve,
        (connection) => (statement: string, params: ReadonlyArray<unknown>) =>
          connection.execute(statement, params, undefined)
      )

  /**
   * The advisory lock keeps a second run out at once, and frees itself when its connection dies, so a
   * crashed archiver blocks no one. But the run goes on when that happens, so correctness comes from the
   * token: taken under the lock, it supersedes every older one, and the ledger's writes check it.
   */
  const locked = <A, E, R>(use: (lease: ArchiverLease) => Effect.Effect<A, E, R>) =>
    Effect.scoped(
      Effect.gen(function* () {
        const execute = yield* lockSession.pipe(Effect.mapError(failWith("lock")))
        const [row] = yield* execute("SELECT pg_try_advisory_lock($1) AS locked", [ARCHIVER_LOCK]).pipe(
          Effect.mapError(failWith("lock"))
        )
        if (row?.locked !== true) return yield* new ArchiverBusy()
        yield* Effect.addFinalizer(() => execute("SELECT pg_advisory_unlock($1)", [ARCHIVER_LOCK]).pipe(Effect.ignore))
        // Waits for the commits of an older holder still under way, whose share locks hold the row.
        const [lease] = yield* execute(
          `UPDATE archiver_lease SET token = token + 1, acquired_at = now(),
             holder = coalesce(host(inet_client_addr()), 'local') || ' backend ' || pg_backend_pid()
           RETURNING token::text AS token`,
          []
        ).pipe(Effect.mapError(failWith("lease")))
        return yield* use({ token: Number((lease as { token: string }).token) })
      })
    )

  const exclusive = <A, E, R>(use: (lease: ArchiverLease) => Effect.Effect<A, E, R>) =>
    oneSession
      ? runsHere
          .withPermitsIfAvailable(1)(locked(use))
          .pipe(
            Effect.flatMap(
              Option.match({ onNone: () => Effect.fail(new ArchiverBusy()), onSome: (a) => Effect.succeed(a) })
            )
          )
      : locked(use)

  /**
   * Inside a transaction: fails with `ArchiverLeaseLost` unless `lease` is the newest. The share lock holds
   * the lease row until the transaction ends, so a new run's acquisition waits for this one's commit, and a
   * commit that waited on an acquisition sees the new token.
   */
  const fence = (lease: ArchiverLease, operation: string) =>
    sql<{ token: string }>`SELECT token::text AS token FROM archiver_lease WHERE token = ${lease.token} FOR SHARE`.pipe(
      Effect.mapError(failWith(operation)),
      Effect.flatMap((rows) =>
        rows.length === 1 ? Effect.void : Effect.fail(new ArchiverLeaseLost({ token: lease.token, operation }))
      )
    )

  /** `effect` in one transaction, after the fence. */
  /** The day's archive lock, exclusive (upserts take it shared): see `ARCHIVED_DAY_LOCK`. */
  const lockDay = (day: string) => sql`SELECT pg_advisory_xact_lock(${ARCHIVED_DAY_LOCK}, hashtext(${day}))`

  const fenced = <A, E>(lease: ArchiverLease, operation: string, effect: Effect.Effect<A, E>) =>
    sql
      .withTransaction(fence(lease, operation).pipe(Effect.andThen(effect)))
      .pipe(Effect.catchTag("SqlError", (error) => Effect.fail(failWith(operation)(error))))

  const checkLease = Effect.fn("ArchiveLedger.checkLease")(function* (lease: ArchiverLease) {
    yield* fenced(lease, "check lease", Effect.void)
  })

  const archivableDays = Effect.fn("ArchiveLedger.archivableDays")(function* (
    before: number,
    limit: number,
    after?: ArchivableDay
  ) {
    // The lower bound on the instant (the start of `after`'s day) spares each page the days before it.
    const rows = yield* sql<{ day: string; user_id: string; rows: number }>`
      SELECT to_char("timestamp" AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, user_id, count(*)::int AS rows
      FROM glucose_readings
      WHERE "timestamp" < ${iso(before)}::timestamptz
        ${
          after === undefined
            ? sql``
            : sql`AND "timestamp" >= ${`${after.day}T00:00:00.000Z`}::timestamptz
              AND (to_char("timestamp" AT TIME ZONE 'UTC', 'YYYY-MM-DD'), user_id) > (${after.day}, ${after.user_id})`
        }
      GROUP BY day, user_id
      ORDER BY day, user_id
      LIMIT ${limit}`.pipe(Effect.mapError(failWith("archivable days")))
    return rows.map((row): DueDay => ({ day: row.day, user_id: row.user_id as UserId, rows: Number(row.rows) }))
  })

  const readChunk = Effect.fn("ArchiveLedger.readChunk")(function* (query: {
    readonly user_id: UserId
    readonly from: number
    readonly to: number
    readonly limit: number
    readonly after?: readonly [number, SensorId] | undefined
  }) {
    const rows = yield* sql<ReadingRecordRow>`
      SELECT ${recordColumns(sql)}
      FROM glucose_readings
      WHERE user_id = ${query.user_id}
        AND "timestamp" >= ${iso(query.from)}::timestamptz AND "timestamp" < ${iso(query.to)}::timestamptz
        ${query.after === undefined ? sql`` : sql`AND ("timestamp", sensor_id COLLATE "C") > (${iso(query.after[0])}::timestamptz, ${query.after[1]})`}
      ORDER BY "timestamp", sensor_id COLLATE "C"
      LIMIT ${query.limit}`.pipe(Effect.mapError(failWith("read chunk")))
    return rows.map(toReadingRecord)
  })

  const readUsers = Effect.fn("ArchiveLedger.readUsers")(function* (query: {
    readonly user_ids: ReadonlyArray<UserId>
    readonly from: number
    readonly to: number
  }) {
    const rows = yield* sql<ReadingRecordRow>`
      SELECT ${recordColumns(sql)}
      FROM glucose_readings
      WHERE user_id = ANY(${[...query.user_ids]}::text[])
        AND "timestamp" >= ${iso(query.from)}::timestamptz AND "timestamp" < ${iso(query.to)}::timestamptz
      ORDER BY user_id, "timestamp", sensor_id COLLATE "C"`.pipe(Effect.mapError(failWith("read users")))
    return rows.map(toReadingRecord)
  })

  /** The columns of `objects` as arrays, one element per object, for `unnest`. */
  const objectArrays = (objects: ReadonlyArray<ArchivedObject>) => ({
    keys: objects.map((object) => object.key),
    days: objects.map((object) => object.day),
    users: objects.map((object) => object.user_id),
    counts: pgArray(
      objects.map((object) => object.row_count),
      OID.int4
    ),
    checksums: objects.map((object) => object.checksum),
    firsts: objects.map((object) => iso(object.first_timestamp)),
    lasts: objects.map((object) => iso(object.last_timestamp)),
    // Each object's sensors as a JSON array (an array column cannot hold arrays of different lengths).
    sensors: pgArray(
      objects.map((object) => {
        const sensors = sensorsOf(object)
        return sensors === null ? null : JSON.stringify(sensors)
      }),
      OID.text
    )
  })

  /** The `unnest` of `objectArrays`, as the relation `o(key, day, user_id, row_count, checksum, first, last, sensors)`. */
  const objectsRelation = (objects: ReadonlyArray<ArchivedObject>) => {
    const a = objectArrays(objects)
    return sql`(SELECT key, day::date AS day, user_id, row_count, checksum, first, last,
        CASE WHEN sensors IS NULL THEN NULL ELSE ARRAY(SELECT jsonb_array_elements_text(sensors::jsonb)) END AS sensor_ids
      FROM unnest(${a.keys}::text[], ${a.days}::text[], ${a.users}::text[], ${a.counts}::int4[], ${a.checksums}::text[],
        ${a.firsts}::timestamptz[], ${a.lasts}::timestamptz[], ${a.sensors}::text[])
        AS u(key, day, user_id, row_count, checksum, first, last, sensors)) AS o`
  }

  const beginGroup = Effect.fn("ArchiveLedger.beginGroup")(function* (
    lease: ArchiverLease,
    objects: ReadonlyArray<ArchivedObject>
  ) {
    if (objects.length === 0) return []
    // One statement: the no-op update on conflict makes RETURNING answer for an existing key too,
    // whose state stays as it is (a committed key holds the same rows, archived before).
    const insert = sql<{ key: string; state: "pending" | "committed" }>`
      INSERT INTO archive_objects (key, day, user_id, row_count, checksum, first_timestamp, last_timestamp, state,
        sensor_ids)
      SELECT key, day, user_id, row_count, checksum, first, last, 'pending', sensor_ids FROM ${objectsRelation(objects)}
      ON CONFLICT (key) DO UPDATE SET state = archive_objects.state
      RETURNING key, state`.pipe(Effect.mapError(failWith("begin")))
    const states = new Map((yield* fenced(lease, "begin", insert)).map((row) => [row.key, row.state]))
    return objects.map((object) => states.get(object.key) ?? "pending")
  })

  const begin = Effect.fn("ArchiveLedger.begin")(function* (lease: ArchiverLease, object: ArchivedObject) {
    const [state] = yield* beginGroup(lease, [object])
    return state ?? "pending"
  })

  /** Records `objects` as committed (new, or pending before), their days' manifests to be written again. */
  const recordCommitted = (objects: ReadonlyArray<ArchivedObject>, operation: string) =>
    sql`
      INSERT INTO archive_objects (key, day, user_id, row_count, checksum, first_timestamp, last_timestamp, state,
        manifested, committed_at, sensor_ids)
      SELECT key, day, user_id, row_count, checksum, first, last, 'committed', false, now(), sensor_ids
      FROM ${objectsRelation(objects)}
      ON CONFLICT (key) DO UPDATE SET state = 'committed', manifested = false, committed_at = now(),
        sensor_ids = coalesce(EXCLUDED.sensor_ids, archive_objects.sensor_ids)`.pipe(
      Effect.asVoid,
      Effect.mapError(failWith(operation))
    )

  /**
   * Removes the rows of each entry whose etag is unchanged, in one statement; answers how many rows of each
   * entry went, in the entries' order.
   */
  const removeAll = Effect.fnUntraced(function* (entries: ReadonlyArray<ArchiveCommit>) {
    const keys = entries.flatMap((entry, index) =>
      entry.rows.map((row) => ({ index, user: entry.object.user_id, row }))
    )
    const removed = yield* sql<{ n: number; removed: number }>`
      WITH archived AS (
        SELECT * FROM unnest(
          ${pgArray(
            keys.map((key) => key.index),
            OID.int4
          )}::int4[],
          ${keys.map((key) => key.user)}::text[],
          ${keys.map((key) => key.row.sensor_id)}::text[],
          ${keys.map((key) => iso(key.row.timestamp))}::timestamptz[],
          ${keys.map((key) => key.row.etag)}::text[]
        ) AS k(n, user_id, sensor_id, "timestamp", etag)
      ),
      gone AS (
        DELETE FROM glucose_readings r USING archived k
        WHERE r.sensor_id = k.sensor_id AND r."timestamp" = k."timestamp" AND r.etag = k.etag
          AND r.user_id = k.user_id
          AND r."timestamp" >= ${iso(Math.min(...entries.map((entry) => entry.object.first_timestamp)))}::timestamptz
          AND r."timestamp" <= ${iso(Math.max(...entries.map((entry) => entry.object.last_timestamp)))}::timestamptz
        RETURNING k.n
      )
      SELECT n, count(*)::int AS removed FROM gone GROUP BY n`.pipe(Effect.mapError(failWith("commit")))
    const counts = entries.map(() => 0)
    for (const row of removed) counts[Number(row.n)] = Number(row.removed)
    return counts
  })

  /**
   * `removeAll` one statement per entry, for TimescaleDB: in PGlite (WASM) the one statement for many objects
   * crashes the server when a compressed chunk is in its way, and so does this one without the object's own
   * bounds. The entries still commit in one transaction.
   */
  const removeEach = (entries: ReadonlyArray<ArchiveCommit>) =>
    Effect.forEach(entries, ({ object, rows }) =>
      sql<{ removed: number }>`
        WITH archived AS (
          SELECT * FROM unnest(
            ${rows.map((row) => row.sensor_id)}::text[],
            ${rows.map((row) => iso(row.timestamp))}::timestamptz[],
            ${rows.map((row) => row.etag)}::text[]
          ) AS k(sensor_id, "timestamp", etag)
        ),
        gone AS (
          DELETE FROM glucose_readings r USING archived k
          WHERE r.sensor_id = k.sensor_id AND r."timestamp" = k."timestamp" AND r.etag = k.etag
            AND r.user_id = ${object.user_id}
            AND r."timestamp" >= ${iso(object.first_timestamp)}::timestamptz
            AND r."timestamp" <= ${iso(object.last_timestamp)}::timestamptz
          RETURNING 1
        )
        SELECT count(*)::int AS removed FROM gone`.pipe(
        Effect.map(([row]) => Number(row?.removed ?? 0)),
        Effect.mapError(failWith("commit"))
      )
    )

  /**
   * Inside a group commit's transaction: removes the rows of every entry and commits them all, or, if a row
   * of some entry changed or vanished, fails with the entries that did not remove all their rows (the
   * transaction is then rolled back, and tried again without them).
   */
  const removeAndCommit = Effect.fnUntraced(function* (entries: ReadonlyArray<ArchiveCommit>) {
    const days = [...new Set(entries.map((entry) => entry.object.day))].sort()
    // In day order, as upserts take them shared: two group commits, or a commit and an upsert, never deadlock.
    yield* sql`SELECT pg_advisory_xact_lock(${ARCHIVED_DAY_LOCK}, hashtext(day))
      FROM unnest(${days}::text[]) AS d(day) ORDER BY day`.pipe(Effect.mapError(failWith("commit")))
    // A commit whose answer was lost (a cut connection, the client's statement deadline at COMMIT) is
    // retried as transient: if it went through, its rows are gone and its keys are committed. That is
    // success, never a conflict: a conflict would make the archiver remove the committed object.
    const done = new Set(
      (yield* sql<{ key: string }>`
        SELECT key FROM archive_objects
        WHERE key = ANY(${entries.map((entry) => entry.object.key)}::text[]) AND state = 'committed'`.pipe(
        Effect.mapError(failWith("commit"))
      )).map((row) => row.key)
    )
    const toCommit = entries.filter((entry) => !done.has(entry.object.key))
    if (toCommit.length === 0) return
    const removedOf = backend === "timescale" ? yield* removeEach(toCommit) : yield* removeAll(toCommit)
    const conflicts = toCommit.flatMap((entry, index) => {
      const count = removedOf[index] ?? 0
      return count === entry.object.row_count
        ? []
        : [new ArchiveConflict({ key: entry.object.key, expected: entry.object.row_count, removed: count })]
    })
    if (conflicts.length > 0) return yield* new RowsChanged({ conflicts })
    yield* recordCommitted(
      toCommit.map((entry) => entry.object),
      "commit"
    )
    // From here on, events for keys of these days up to each object's last reading that are not hot go to
    // the late queue (see `ReadingStore.upsert`): a key removed just now can no longer come back hot.
    const objects = objectArrays(toCommit.map((entry) => entry.object))
    yield* sql`
      INSERT INTO glucose_archived_days (user_id, day, archived_through)
      SELECT user_id, day::date, max(last) FROM unnest(${objects.users}::text[], ${objects.days}::text[],
        ${objects.lasts}::timestamptz[]) AS o(user_id, day, last)
      GROUP BY user_id, day
      ON CONFLICT (user_id, day) DO UPDATE SET
        archived_through = greatest(glucose_archived_days.archived_through, EXCLUDED.archived_through)`.pipe(
      Effect.mapError(failWith("commit"))
    )
  })

  const commitGroup = Effect.fn("ArchiveLedger.commitGroup")(function* (
    lease: ArchiverLease,
    entries: ReadonlyArray<ArchiveCommit>
  ) {
    const conflicts: Array<ArchiveConflict> = []
    let remaining = entries
    // Each try either commits every entry left or is rolled back naming some that conflict: at most one
    // try more than there are conflicting entries.
    while (remaining.length > 0) {
      const changed = yield* fenced(lease, "commit", removeAndCommit(remaining)).pipe(
        Effect.as<ReadonlyArray<ArchiveConflict>>([]),
        Effect.catchTag("RowsChanged", (error) => Effect.succeed(error.conflicts))
      )
      if (changed.length === 0) break
      conflicts.push(...changed)
      const conflicting = new Set(changed.map((conflict) => conflict.key))
      remaining = remaining.filter((entry) => !conflicting.has(entry.object.key))
    }
    const conflicting = new Set(conflicts.map((conflict) => conflict.key))
    return {
      committed: entries.filter((entry) => !conflicting.has(entry.object.key)).map((entry) => entry.object.key),
      conflicts
    } satisfies GroupCommitted
  })

  const commit = Effect.fn("ArchiveLedger.commit")(function* (
    lease: ArchiverLease,
    object: ArchivedObject,
    rows: ReadonlyArray<Pick<ReadingRecord, "sensor_id" | "timestamp" | "etag">>
  ) {
    const { conflicts } = yield* commitGroup(lease, [{ object, rows }])
    if (conflicts[0] !== undefined) return yield* conflicts[0]
  })

  const pending = sql<ObjectRow>`
    SELECT ${objectColumns} FROM archive_objects WHERE state = 'pending' ORDER BY key`.pipe(
    Effect.map((rows) => rows.map(toObject)),
    Effect.mapError(failWith("pending")),
    Effect.withSpan("ArchiveLedger.pending")
  )

  const retired = sql<ObjectRow>`
    SELECT ${objectColumns} FROM archive_objects WHERE state = 'retired' ORDER BY key`.pipe(
    Effect.map((rows) => rows.map(toObject)),
    Effect.mapError(failWith("retired")),
    Effect.withSpan("ArchiveLedger.retired")
  )

  const forget = Effect.fn("ArchiveLedger.forget")(function* (lease: ArchiverLease, key: string) {
    yield* fenced(
      lease,
      "forget",
      sql`DELETE FROM archive_objects WHERE key = ${key} AND state IN ('pending', 'retired')`.pipe(
        Effect.mapError(failWith("forget"))
      )
    )
  })

  const objectsOverlapping = Effect.fn("ArchiveLedger.objectsOverlapping")(function* (
    userId: UserId,
    from: number,
    to: number,
    sensorId?: SensorId
  ) {
    const rows = yield* sql<ObjectRow>`
      SELECT ${objectColumns} FROM archive_objects
      WHERE state = 'committed' AND user_id = ${userId}
        AND first_timestamp < ${iso(to)}::timestamptz AND last_timestamp >= ${iso(from)}::timestamptz
        ${sensorId === undefined ? sql`` : sql`AND (sensor_ids IS NULL OR ${sensorId} = ANY(sensor_ids))`}
      ORDER BY first_timestamp, key`.pipe(Effect.mapError(failWith("objects overlapping")))
    return rows.map(toObject)
  })

  const lateColumns = sql.literal(`event_id::text AS event_id, id::text AS id, sensor_id, user_id,
    (extract(epoch FROM "timestamp") * 1000)::float8 AS timestamp_ms, glucose_value, source, sensor_limit,
    event_partition, event_offset::text AS event_offset, floor(extract(epoch FROM received_at) * 1000)::float8 AS received_ms`)

  const lateEvents = Effect.fn("ArchiveLedger.lateEvents")(function* (userId: UserId, from: number, to: number) {
    const rows = yield* sql<LateEventRow>`
      SELECT ${lateColumns} FROM glucose_late_events
      WHERE user_id = ${userId} AND "timestamp" >= ${iso(from)}::timestamptz AND "timestamp" < ${iso(to)}::timestamptz
      ORDER BY "timestamp", sensor_id COLLATE "C", event_partition, event_offset, event_id`.pipe(
      Effect.mapError(failWith("late events"))
    )
    return rows.map(toLateEvent)
  })

  const lateDays = sql<{ day: string; user_id: string }>`
    SELECT DISTINCT to_char("timestamp" AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, user_id
    FROM glucose_late_events ORDER BY day, user_id`.pipe(
    Effect.map((rows) => rows.map((row) => ({ day: row.day, user_id: row.user_id as UserId }))),
    Effect.mapError(failWith("late days")),
    Effect.withSpan("ArchiveLedger.lateDays")
  )

  const fold = Effect.fn("ArchiveLedger.fold")(function* (lease: ArchiverLease, fold: ArchiveFold) {
    const newKeys = new Set(fold.objects.map((object) => object.key))
    const retire = fold.retire.filter((key) => !newKeys.has(key))
    const apply = Effect.gen(function* () {
      // Under the day's lock: no upsert routes an event of this day while its objects are swapped.
      yield* lockDay(fold.day).pipe(Effect.mapError(failWith("fold")))
      // A fold whose answer was lost and is retried finds its new objects committed and the old ones no
      // longer committed: it went through, and is a success (a conflict would discard the new objects).
      if (fold.objects.length > 0) {
        const [{ applied }] = (yield* sql<{ applied: boolean }>`
          SELECT count(*) FILTER (WHERE key = ANY(${[...newKeys]}::text[]) AND state = 'committed') = ${fold.objects.length}
            AND count(*) FILTER (WHERE key = ANY(${retire}::text[]) AND state = 'committed') = 0 AS applied
          FROM archive_objects WHERE key = ANY(${[...newKeys, ...retire]}::text[])`.pipe(
          Effect.mapError(failWith("fold"))
        )) as [{ applied: boolean }]
        if (applied) return
      }
      const [{ committed }] = (yield* sql<{ committed: number }>`
        SELECT count(*)::int AS committed FROM archive_objects
        WHERE key = ANY(${fold.retire}::text[]) AND state = 'committed' AND user_id = ${fold.user_id}`.pipe(
        Effect.mapError(failWith("fold"))
      )) as [{ committed: number }]
      if (Number(committed) !== fold.retire.length) {
        return yield* new ArchiveConflict({
          key: fold.retire[0] ?? "",
          expected: fold.retire.length,
          removed: Number(committed)
        })
      }
      if (fold.objects.length > 0) yield* recordCommitted(fold.objects, "fold")
      if (retire.length > 0) {
        // The day's manifest must be written again without them.
        yield* sql`UPDATE archive_objects SET state = 'retired' WHERE key = ANY(${retire}::text[])`.pipe(
          Effect.mapError(failWith("fold"))
        )
        yield* sql`UPDATE archive_objects SET manifested = false WHERE day = ${fold.day}::date AND state = 'committed'`.pipe(
          Effect.mapError(failWith("fold"))
        )
      }
      if (fold.superseded.length > 0) {
        const old = fold.superseded.map((entry) => entry.record)
        yield* sql`
          INSERT INTO glucose_readings_history (id, sensor_id, user_id, "timestamp", glucose_value, source, version,
            etag, event_id, created_at, updated_at, superseded_by_event, sensor_limit)
          SELECT * FROM unnest(
            ${pgArray(
              old.map((r) => BigInt(r.id)),
              OID.int8
            )}::int8[], ${old.map((r) => r.sensor_id)}::text[],
            ${old.map((r) => r.user_id)}::text[], ${old.map((r) => iso(r.timestamp))}::timestamptz[],
            ${pgArray(
              old.map((r) => r.glucose_value),
              OID.float8
            )}::float8[], ${old.map((r) => r.source)}::text[],
            ${pgArray(
              old.map((r) => r.version),
              OID.int4
            )}::int4[], ${old.map((r) => r.etag)}::text[],
            ${old.map((r) => r.event_id)}::uuid[], ${old.map((r) => iso(r.created_at))}::timestamptz[],
            ${old.map((r) => iso(r.updated_at))}::timestamptz[], ${fold.superseded.map((entry) => entry.by)}::uuid[],
            ${pgArray(
              old.map((r) => r.sensor_limit ?? null),
              OID.text
            )}::text[])`.pipe(Effect.mapError(failWith("fold")))
      }
      yield* sql`DELETE FROM glucose_late_events WHERE event_id = ANY(${fold.folded}::uuid[])`.pipe(
        Effect.mapError(failWith("fold"))
      )
    })
    yield* fenced(lease, "fold", apply)
  })

  const unmanifestedDays = sql<{ day: string }>`
    SELECT DISTINCT to_char(day, 'YYYY-MM-DD') AS day FROM archive_objects
    WHERE state = 'committed' AND NOT manifested ORDER BY day`.pipe(
    Effect.map((rows) => rows.map((row) => row.day)),
    Effect.mapError(failWith("unmanifested days")),
    Effect.withSpan("ArchiveLedger.unmanifestedDays")
  )

  const objectsOfDay = Effect.fn("ArchiveLedger.objectsOfDay")(function* (day: string) {
    const rows = yield* sql<ObjectRow>`
      SELECT ${objectColumns} FROM archive_objects
      WHERE state = 'committed' AND day = ${day}::date ORDER BY key`.pipe(Effect.mapError(failWith("objects of day")))
    return rows.map(toObject)
  })

  const markManifested = Effect.fn("ArchiveLedger.markManifested")(function* (
    lease: ArchiverLease,
    day: string,
    keys: ReadonlyArray<string>
  ) {
    yield* fenced(
      lease,
      "mark manifested",
      sql`UPDATE archive_objects SET manifested = true
        WHERE day = ${day}::date AND key = ANY(${keys}::text[])`.pipe(Effect.mapError(failWith("mark manifested")))
    )
  })

  /** Drops one part of the hot table if, under its lock, no row is left in `range`; whether it did. */
  /**
   * Drops one part of the hot table if, under its lock, no row is left in [from, to) (timestamptz text, as
   * the catalog gives it: no rounding on the way); whether it did. `first` runs before the part is locked,
   * so locks are taken in the order the processors take them.
   */
  const dropIfEmpty = (part: {
    readonly table: string
    readonly from: string
    readonly to: string
    readonly first: Effect.Effect<unknown, SqlError.SqlError>
    readonly drop: Effect.Effect<boolean, SqlError.SqlError>
  }) =>
    sql
      .withTransaction(
        Effect.gen(function* () {
          yield* part.first
          // The part itself, so no insert slips in between the check and the drop.
          yield* sql.unsafe(`LOCK TABLE ${part.table} IN ACCESS EXCLUSIVE MODE`)
          // Through the parent table: a compressed chunk's rows are not in the chunk's own heap.
          const [{ empty }] = (yield* sql<{ empty: boolean }>`
            SELECT NOT EXISTS (SELECT 1 FROM glucose_readings
              WHERE "timestamp" >= ${part.from}::timestamptz AND "timestamp" < ${part.to}::timestamptz) AS empty`) as [
            { empty: boolean }
          ]
          return empty ? yield* part.drop : false
        })
      )
      .pipe(Effect.mapError(failWith("drop partition")))

  /**
   * Monthly partitions (PostgreSQL) or chunks (TimescaleDB) that end at or before `before` and hold no
   * row: every row they held is in the archive, since a commit deletes the hot rows of its object.
   */
  const dropEmptyPartitions = Effect.fn("ArchiveLedger.dropEmptyPartitions")(function* (before: number) {
    const dropped: Array<string> = []
    if (backend === "timescale") {
      const chunks = yield* sql<{ table: string; name: string; range_start: string; range_end: string }>`
        SELECT format('%I.%I', chunk_schema, chunk_name) AS table, chunk_name AS name,
          range_start::text AS range_start, range_end::text AS range_end
        FROM timescaledb_information.chunks
        WHERE hypertable_name = 'glucose_readings' AND range_end <= ${iso(before)}::timestamptz
        ORDER BY range_start`.pipe(Effect.mapError(failWith("list chunks")))
      for (const chunk of chunks) {
        const dropChunk = Effect.gen(function* () {
          // Both bounds at the chunk's own range: that chunk and no other (chunks of one time dimension do not
          // overlap). It answers the chunks it dropped: none, if another run dropped it meanwhile.
          const [{ count }] = (yield* sql<{ count: number }>`
            SELECT count(*)::int AS count FROM drop_chunks('glucose_readings',
              older_than => ${chunk.range_end}::timestamptz, newer_than => ${chunk.range_start}::timestamptz)`) as [
            { count: number }
          ]
          return Number(count) === 1
        })
        const wasDropped = yield* dropIfEmpty({
          table: chunk.table,
          from: chunk.range_start,
          to: chunk.range_end,
          first: Effect.void,
          drop: dropChunk
        })
        if (wasDropped) dropped.push(chunk.name)
      }
      return dropped
    }
    const partitions = yield* sql<{ name: string }>`
      SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = 'glucose_readings'::regclass ORDER BY c.relname`.pipe(
      Effect.mapError(failWith("list partitions"))
    )
    for (const { name } of partitions) {
      const range = monthPartitionRange(name)
      if (range === undefined || range.to > before) continue
      const wasDropped = yield* dropIfEmpty({
        table: name,
        from: iso(range.from),
        to: iso(range.to),
        // The lock that guards creating partitions before the partition's and the parent's, as a processor
        // takes it before it creates a partition: the other order can deadlock with it.
        first: lockPartitions(sql),
        drop: sql.unsafe(`DROP TABLE ${name}`).pipe(Effect.as(true))
      })
      if (wasDropped) dropped.push(name)
    }
    return dropped
  })

  return ArchiveLedger.of({
    exclusive,
    checkLease,
    archivableDays,
    readChunk,
    readUsers,
    begin,
    beginGroup,
    commit,
    commitGroup,
    pending,
    retired,
    forget,
    objectsOverlapping,
    lateEvents,
    lateDays,
    fold,
    unmanifestedDays,
    objectsOfDay,
    markManifested,
    dropEmptyPartitions
  })
})

/** The ledger in the readings database; built after the readings store, whose table it shares. */
export const layer = Layer.effect(ArchiveLedger, make)
