import { contentHash, Reading, type SensorId } from "@dexmon/domain"
import { type Band, MAX_READING_GAP_MS, mergeValueCounts } from "@dexmon/statistics"
import { Clock, Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { decodeCursor, encodeCursor } from "../Cursor.ts"
import { runMigrations } from "../postgres/Migrations.ts"
import { OID, pgArray } from "../postgres/PgArrays.ts"
import { failureOf } from "../StoreFailure.ts"
import {
  type ReadingQuery,
  ReadingStore,
  ReadingStoreError,
  type ReadingSummary,
  type ReadingSummaryQuery,
  type ReadingWrite,
  type UpsertSummary
} from "./ReadingStore.ts"
import {
  ARCHIVED_DAY_LOCK,
  chooseBackend,
  lockPartitions,
  monthPartitionName,
  monthStart,
  nextMonth,
  type ReadingsBackend,
  readingsBackendConfig,
  readingsMigrations,
  utcDay
} from "./ReadingsSchema.ts"

const failWith = failureOf((fields) => new ReadingStoreError(fields))

/**
 * Splits a batch into rounds so that no round holds two events for one key:
 * round k holds the k-th event of every key, in batch order. One statement per
 * round then applies exactly what applying the events one by one would, and a
 * batch without repeated keys (the usual case) is one statement.
 */
export const splitIntoRounds = (batch: ReadonlyArray<ReadingWrite>): ReadonlyArray<ReadonlyArray<ReadingWrite>> => {
  const rounds: Array<Array<ReadingWrite>> = []
  const seenPerKey = new Map<string, number>()
  for (const write of batch) {
    const key = `${write.sensor_id}\u0000${write.timestamp}`
    const round = seenPerKey.get(key) ?? 0
    seenPerKey.set(key, round + 1)
    if (round === rounds.length) rounds.push([])
    rounds[round]!.push(write)
  }
  return rounds
}

const ReadingRow = Schema.Struct({
  id: Schema.String,
  sensor_id: Schema.String,
  user_id: Schema.String,
  timestamp_ms: Schema.Number,
  glucose_value: Schema.Number,
  source: Schema.String,
  sensor_limit: Schema.NullOr(Schema.String),
  version: Schema.Number,
  etag: Schema.String,
  created_ms: Schema.Number,
  updated_ms: Schema.Number
})
const toReading = (row: typeof ReadingRow.Type) =>
  Schema.decodeUnknownEffect(Reading)({
    id: row.id,
    sensor_id: row.sensor_id,
    user_id: row.user_id,
    timestamp: new Date(row.timestamp_ms).toISOString(),
    glucose_value: row.glucose_value,
    source: row.source,
    ...(row.sensor_limit === null ? {} : { sensor_limit: row.sensor_limit }),
    version: row.version,
    etag: row.etag,
    created_at: new Date(row.created_ms).toISOString(),
    updated_at: new Date(row.updated_ms).toISOString()
  })

/**
 * Monthly range partitions of `glucose_readings` (when it is natively
 * partitioned rather than a hypertable): created at start for the hot window
 * and a month ahead, and on demand before a batch that reaches a month with no
 * partition yet, under an advisory lock so concurrent processors do not race.
 * The archiver detaches whole months once they are archived.
 */
const makePartitions = Effect.fnUntraced(function* (sql: SqlClient.SqlClient, backend: ReadingsBackend) {
  // A hypertable makes its chunks itself.
  const partitioned = backend === "postgres"
  const existing = new Set<string>()
  /** Whether every month of `timestamps` has a partition this process knows of (or the table has none). */
  const known = (timestamps: ReadonlyArray<number>) =>
    !partitioned || timestamps.every((t) => existing.has(monthPartitionName(monthStart(t))))
  const ensureFor = (timestamps: ReadonlyArray<number>) =>
    Effect.gen(function* () {
      if (!partitioned) return
      const missing = [...new Set(timestamps.map((t) => monthStart(t).getTime()))]
        .map((t) => new Date(t))
        .filter((start) => !existing.has(monthPartitionName(start)))
      if (missing.length === 0) return
      yield* sql.withTransaction(
        Effect.gen(function* () {
          yield* lockPartitions(sql)
          for (const start of missing) {
            yield* sql.unsafe(
              `CREATE TABLE IF NOT EXISTS ${monthPartitionName(start)} PARTITION OF glucose_readings
               FOR VALUES FROM ('${start.toISOString()}') TO ('${nextMonth(start).toISOString()}')`
            )
          }
        })
      )
      for (const start of missing) existing.add(monthPartitionName(start))
    }).pipe(Effect.mapError(failWith("create partitions")))

  const now = yield* Clock.currentTimeMillis
  const ahead: Array<number> = []
  for (
    let month = monthStart(now - 100 * 86_400_000);
    month.getTime() <= now + 31 * 86_400_000;
    month = nextMonth(month)
  ) {
    ahead.push(month.getTime())
  }
  yield* ensureFor(ahead).pipe(Effect.orDie)
  return { known, ensureFor }
})

/**
 * The readings store on TimescaleDB (a hypertable) or PostgreSQL (monthly partitions), as `requested`
 * (see `chooseBackend`). The conflict rule of the design runs inside the upsert (`ON CONFLICT ... DO
 * UPDATE ... WHERE`), with the version bump and the etag in the same statement; the domain's
 * `applyConflictRule` is the reference the contract suite checks it against.
 */
export const makeWith = Effect.fnUntraced(function* (requested: ReadingsBackend | "detect") {
  const sql = yield* SqlClient.SqlClient
  const backend = yield* chooseBackend(requested)
  yield* Effect.logInfo(
    backend === "timescale"
      ? "readings in a TimescaleDB hypertable (chunks, compression)"
      : "readings in PostgreSQL, partitioned by month",
    { backend, requested }
  )
  yield* runMigrations("readings", readingsMigrations(backend))
  // Chosen before the migrations ran: another process may have laid the table out the other way in
  // between (its own DEXMON_READINGS_BACKEND), and then this one must not go on as if it had its own way.
  yield* chooseBackend(backend)
  const partitions = yield* makePartitions(sql, backend)

  // The columns of a Reading, with instants as epoch milliseconds (exact for millisecond precision).
  const readingColumns = sql.literal(`id::text AS id, sensor_id, user_id,
    (extract(epoch FROM "timestamp") * 1000)::float8 AS timestamp_ms,
    glucose_value, source, sensor_limit, version, etag,
    (extract(epoch FROM created_at) * 1000)::float8 AS created_ms,
    (extract(epoch FROM updated_at) * 1000)::float8 AS updated_ms`)

  // The domain's `isLaterEvent`: by first-append offset within one partition, else (a row from before
  // positions were kept, or a write without one) by the time-ordered event id.
  const laterEvent = sql.literal(`CASE WHEN EXCLUDED.event_partition = r.event_partition
      THEN EXCLUDED.event_offset > r.event_offset ELSE EXCLUDED.event_id > r.event_id END`)

  const upsertRound = (round: ReadonlyArray<ReadingWrite>) =>
    sql<{ inserted: number; replaced: number; touched: number }>`
      WITH incoming AS (
        SELECT * FROM unnest(
          ${round.map((w) => w.sensor_id)}::text[],
          ${round.map((w) => w.user_id)}::text[],
          ${round.map((w) => new Date(w.timestamp).toISOString())}::timestamptz[],
          ${pgArray(
            round.map((w) => w.glucose_value),
            OID.float8
          )}::float8[],
          ${round.map((w) => w.source)}::text[],
          ${pgArray(
            round.map((w) => w.sensor_limit ?? null),
            OID.text
          )}::text[],
          ${round.map((w) => w.event_id)}::uuid[],
          ${pgArray(
            round.map((w) => w.position?.partition ?? null),
            OID.int4
          )}::int4[],
          ${pgArray(
            round.map((w) => (w.position === undefined ? null : BigInt(w.position.offset))),
            OID.int8
          )}::int8[],
          ${round.map(contentHash)}::text[]
        ) AS t(sensor_id, user_id, "timestamp", glucose_value, source, sensor_limit, event_id, event_partition,
          event_offset, content_hash)
      ),
      written AS (
        INSERT INTO glucose_readings AS r (sensor_id, user_id, "timestamp", glucose_value, source, sensor_limit,
          version, etag, content_hash, event_id, event_partition, event_offset, created_at, updated_at)
        SELECT sensor_id, user_id, "timestamp", glucose_value, source, sensor_limit, 1, content_hash || '-1',
          content_hash, event_id, event_partition, event_offset, now(), now()
        FROM incoming
        -- Rows locked in key order: concurrent writers of overlapping keys queue up instead of deadlocking.
        ORDER BY sensor_id, "timestamp"
        ON CONFLICT (sensor_id, "timestamp") DO UPDATE SET
          glucose_value = EXCLUDED.glucose_value,
          source = EXCLUDED.source,
          sensor_limit = EXCLUDED.sensor_limit,
          content_hash = EXCLUDED.content_hash,
          event_id = EXCLUDED.event_id,
          event_partition = EXCLUDED.event_partition,
          event_offset = EXCLUDED.event_offset,
          version = r.version + (r.content_hash <> EXCLUDED.content_hash)::int,
          etag = EXCLUDED.content_hash || '-' || (r.version + (r.content_hash <> EXCLUDED.content_hash)::int),
          updated_at = CASE WHEN r.content_hash <> EXCLUDED.content_hash THEN now() ELSE r.updated_at END
        WHERE
          -- only the owner's events touch a reading (the receiver already refuses other users' sensors)
          r.user_id = EXCLUDED.user_id AND (
            -- a replay of a later event: content and version stay, the later event is kept
            (r.content_hash = EXCLUDED.content_hash AND ${laterEvent})
            -- a sensor value replaces a manual one; within one source the later event wins
            OR (r.content_hash <> EXCLUDED.content_hash AND (
              (r.source = 'MANUAL' AND EXCLUDED.source = 'SENSOR')
              OR (r.source = EXCLUDED.source AND ${laterEvent}))))
        -- (xmax = 0 cannot be read from a partitioned table: a row this transaction created is version 1 at now())
        RETURNING (version = 1 AND created_at = now()) AS inserted, updated_at = now() AS changed
      )
      SELECT count(*) FILTER (WHERE inserted)::int AS inserted,
             count(*) FILTER (WHERE NOT inserted AND changed)::int AS replaced,
             count(*)::int AS touched
      FROM written`

  /** Takes the days' archive locks shared, in day order (commits take one exclusively: no deadlock). */
  const lockDays = (batch: ReadonlyArray<ReadingWrite>) =>
    sql`SELECT pg_advisory_xact_lock_shared(${ARCHIVED_DAY_LOCK}, hashtext(day))
      FROM unnest(${[...new Set(batch.map((write) => utcDay(write.timestamp)))].sort()}::text[]) AS d(day)
      ORDER BY day`

  /**
   * The positions in the batch of the events that belong in the late queue: a key that is not hot, of a
   * (user, day) archived at or after its timestamp. A key not hot is either archived or never written; a
   * key still hot (a row that arrived while its chunk was archived) stays hot until the next run takes it.
   */
  const lateIndices = (batch: ReadonlyArray<ReadingWrite>) =>
    sql<{ i: number }>`
      SELECT t.i::int AS i
      FROM unnest(
        ${batch.map((w) => w.sensor_id)}::text[],
        ${batch.map((w) => w.user_id)}::text[],
        ${batch.map((w) => new Date(w.timestamp).toISOString())}::timestamptz[]
      ) WITH ORDINALITY AS t(sensor_id, user_id, "timestamp", i)
      JOIN glucose_archived_days d
        ON d.user_id = t.user_id AND d.day = (t."timestamp" AT TIME ZONE 'UTC')::date
      WHERE t."timestamp" <= d.archived_through
        AND NOT EXISTS (
          SELECT 1 FROM glucose_readings r WHERE r.sensor_id = t.sensor_id AND r."timestamp" = t."timestamp")`.pipe(
      Effect.map((rows) => new Set(rows.map((row) => Number(row.i) - 1)))
    )

  /** Queues late events once each (a redelivery finds its event id there); answers how many were new. */
  const queueLate = (late: ReadonlyArray<ReadingWrite>) =>
    sql<{ queued: number }>`
      WITH queued AS (
        INSERT INTO glucose_late_events (event_id, id, sensor_id, user_id, "timestamp", glucose_value, source,
          sensor_limit, event_partition, event_offset, received_at)
        SELECT event_id, nextval('glucose_readings_id_seq'), sensor_id, user_id, "timestamp", glucose_value, source,
          sensor_limit, event_partition, event_offset, now()
        FROM unnest(
          ${late.map((w) => w.event_id)}::uuid[],
          ${late.map((w) => w.sensor_id)}::text[],
          ${late.map((w) => w.user_id)}::text[],
          ${late.map((w) => new Date(w.timestamp).toISOString())}::timestamptz[],
          ${pgArray(
            late.map((w) => w.glucose_value),
            OID.float8
          )}::float8[],
          ${late.map((w) => w.source)}::text[],
          ${pgArray(
            late.map((w) => w.sensor_limit ?? null),
            OID.text
          )}::text[],
          ${pgArray(
            late.map((w) => w.position?.partition ?? null),
            OID.int4
          )}::int4[],
          ${pgArray(
            late.map((w) => (w.position === undefined ? null : BigInt(w.position.offset))),
            OID.int8
          )}::int8[]
        ) AS t(event_id, sensor_id, user_id, "timestamp", glucose_value, source, sensor_limit, event_partition,
          event_offset)
        ON CONFLICT (event_id) DO NOTHING
        RETURNING 1
      )
      SELECT count(*)::int AS queued FROM queued`.pipe(Effect.map(([row]) => Number(row?.queued ?? 0)))

  /**
   * Events for keys of archived days go to the late queue, in the same transaction and under the days'
   * locks; the rest are applied to the hot store. Partitions are made only for the hot ones: an archived
   * month's partition may have been dropped, and its late events need none.
   */
  const upsert = Effect.fn("ReadingStore.upsert")(function* (batch: ReadonlyArray<ReadingWrite>) {
    if (batch.length === 0) return { inserted: 0, replaced: 0, unchanged: 0 } satisfies UpsertSummary
    const timestamps = batch.map((write) => write.timestamp)
    if (!partitions.known(timestamps)) {
      // Outside the transaction (a partition made inside it would vanish with a rollback, and stay in the
      // cache); the routing inside is the one that counts, and it never turns a late key hot.
      const lateAt = yield* lateIndices(batch).pipe(Effect.mapError(failWith("upsert")))
      yield* partitions.ensureFor(timestamps.filter((_, i) => !lateAt.has(i)))
    }
    const { totals, late, queued } = yield* sql
      .withTransaction(
        Effect.gen(function* () {
          yield* lockDays(batch)
          const lateAt = yield* lateIndices(batch)
          const hot = lateAt.size === 0 ? batch : batch.filter((_, i) => !lateAt.has(i))
          const late = lateAt.size === 0 ? [] : batch.filter((_, i) => lateAt.has(i))
          const queued = late.length === 0 ? 0 : yield* queueLate(late)
          const totals = yield* Effect.forEach(splitIntoRounds(hot), upsertRound)
          return { totals, late: late.length, queued }
        })
      )
      .pipe(Effect.mapError(failWith("upsert")))
    if (late > 0) {
      yield* Effect.logInfo("events for archived days queued as late events", { late, queued })
    }
    const inserted = totals.reduce((n, [row]) => n + Number(row!.inserted), 0)
    const replaced = totals.reduce((n, [row]) => n + Number(row!.replaced), 0)
    return { inserted, replaced, unchanged: batch.length - inserted - replaced } satisfies UpsertSummary
  })

  /**
   * Sensor ids sort by code unit (`COLLATE "C"`) whatever the database's default collation: the archive's rows,
   * merged with a hot page, and the cursor's position compare that way, so a page boundary between two sensors
   * at one instant neither skips nor repeats a reading.
   */
  const list = Effect.fn("ReadingStore.list")(function* (query: ReadingQuery) {
    const after = query.cursor === undefined ? undefined : yield* decodeCursor(query.cursor, ["number", "string"])
    const rows = yield* sql`
      SELECT ${readingColumns}
      FROM glucose_readings
      WHERE user_id = ${query.user_id}
        AND "timestamp" >= ${new Date(query.from).toISOString()}::timestamptz
        AND "timestamp" < ${new Date(query.to).toISOString()}::timestamptz
        ${query.sensor_id === undefined ? sql`` : sql`AND sensor_id = ${query.sensor_id}`}
        ${after === undefined ? sql`` : sql`AND ("timestamp", sensor_id COLLATE "C") > (${new Date(after[0]).toISOString()}::timestamptz, ${after[1]})`}
      ORDER BY "timestamp", sensor_id COLLATE "C"
      LIMIT ${query.limit + 1}`.pipe(Effect.mapError(failWith("list")))
    const decoded = yield* Effect.forEach(rows.slice(0, query.limit), (row) =>
      Schema.decodeUnknownEffect(ReadingRow)(row).pipe(Effect.flatMap(toReading))
    ).pipe(Effect.mapError(failWith("list")))
    const last = decoded[decoded.length - 1]
    return {
      items: decoded,
      next_cursor:
        rows.length > query.limit && last !== undefined ? encodeCursor([last.timestamp, last.sensor_id]) : null
    }
  })

  const history = Effect.fn("ReadingStore.history")(function* (sensorId: string, timestamp: number) {
    const rows = yield* sql`
      SELECT ${readingColumns}
      FROM glucose_readings_history
      WHERE sensor_id = ${sensorId} AND "timestamp" = ${new Date(timestamp).toISOString()}::timestamptz
      ORDER BY version`.pipe(Effect.mapError(failWith("history")))
    return yield* Effect.forEach(rows, (row) =>
      Schema.decodeUnknownEffect(ReadingRow)(row).pipe(Effect.flatMap(toReading))
    ).pipe(Effect.mapError(failWith("history")))
  })

  const get = Effect.fn("ReadingStore.get")(function* (userId: string, sensorId: string, timestamp: number) {
    const rows = yield* sql`
      SELECT ${readingColumns} FROM glucose_readings
      WHERE sensor_id = ${sensorId} AND "timestamp" = ${new Date(timestamp).toISOString()}::timestamptz
        AND user_id = ${userId}`.pipe(Effect.mapError(failWith("get")))
    if (rows.length === 0) return undefined
    return yield* Schema.decodeUnknownEffect(ReadingRow)(rows[0]).pipe(
      Effect.flatMap(toReading),
      Effect.mapError(failWith("get"))
    )
  })

  /** A five-minute slot of a reading's time: TimescaleDB's `time_bucket`, PostgreSQL's `date_bin` (both from the epoch). */
  const slotOf = sql.literal(
    backend === "timescale"
      ? `time_bucket('5 minutes', "timestamp")`
      : `date_bin('5 minutes', "timestamp", TIMESTAMPTZ '1970-01-01 00:00:00+00')`
  )

  /** The SENSOR readings a summary covers. */
  const summarized = (query: ReadingSummaryQuery) => sql`
    SELECT "timestamp", sensor_id, glucose_value FROM glucose_readings
    WHERE user_id = ${query.user_id} AND source = 'SENSOR'
      AND "timestamp" >= ${new Date(query.from).toISOString()}::timestamptz
      AND "timestamp" < ${new Date(query.to).toISOString()}::timestamptz
      ${query.sensor_id === undefined ? sql`` : sql`AND sensor_id = ${query.sensor_id}`}`

  /**
   * Three aggregates over the same rows: the values with their counts per bin of local time of day (the bins of
   * the wall clock in the zone, `AT TIME ZONE` from PostgreSQL's tz data; all counts are their sum), the slots
   * with data, and each sensor's runs (gaps and islands over the sensor's series: a run starts where the band
   * changes or the data stopped for more than `MAX_READING_GAP_MS`), the bands and the gap exactly as `bandOf`
   * and `runsOf` of `@dexmon/statistics` have them.
   */
  const summarize = Effect.fn("ReadingStore.summarize")(function* (query: ReadingSummaryQuery) {
    const rows = summarized(query)
    const [binned, slots, runs] = yield* Effect.all(
      [
        sql<{ bin: number; value: number; count: number }>`
          SELECT floor(extract(epoch FROM ("timestamp" AT TIME ZONE ${query.time_zone})::time)
              / ${query.bin_minutes * 60})::int AS bin,
            glucose_value AS value, count(*)::int AS count
          FROM (${rows}) r
          GROUP BY 1, 2 ORDER BY 1, 2`,
        sql<{ slot: number }>`
          SELECT DISTINCT (extract(epoch FROM ${slotOf}) / 300)::float8 AS slot FROM (${rows}) r ORDER BY 1`,
        sql<{ sensor_id: string; band: number; first: number; last: number; count: number }>`
          WITH banded AS (
            SELECT "timestamp", sensor_id,
              CASE WHEN glucose_value < 54 THEN 0 WHEN glucose_value < 70 THEN 1
                   WHEN glucose_value <= 250 THEN 2 ELSE 3 END AS band
            FROM (${rows}) r
          ), marked AS (
            SELECT "timestamp", sensor_id, band,
              CASE WHEN lag(band) OVER w IS DISTINCT FROM band
                     OR "timestamp" - lag("timestamp") OVER w > make_interval(secs => ${MAX_READING_GAP_MS / 1000})
                   THEN 1 ELSE 0 END AS starts
            FROM banded WINDOW w AS (PARTITION BY sensor_id ORDER BY "timestamp")
          ), numbered AS (
            SELECT "timestamp", sensor_id, band,
              sum(starts) OVER (PARTITION BY sensor_id ORDER BY "timestamp" ROWS UNBOUNDED PRECEDING) AS run
            FROM marked
          )
          SELECT sensor_id, min(band)::int AS band,
            (extract(epoch FROM min("timestamp")) * 1000)::float8 AS first,
            (extract(epoch FROM max("timestamp")) * 1000)::float8 AS last,
            count(*)::int AS count
          FROM numbered GROUP BY sensor_id, run ORDER BY sensor_id, run`
      ],
      { concurrency: 3 }
    ).pipe(Effect.mapError(failWith("summarize")))
    const byTimeOfDay: Array<Array<{ value: number; count: number }>> = Array.from(
      { length: (24 * 60) / query.bin_minutes },
      () => []
    )
    for (const row of binned) {
      byTimeOfDay[Number(row.bin)]?.push({ value: Number(row.value), count: Number(row.count) })
    }
    return {
      counts: mergeValueCounts(...byTimeOfDay),
      by_time_of_day: byTimeOfDay,
      slots: slots.map((row) => Number(row.slot)),
      runs: new Map(
        Array.from(
          Map.groupBy(runs, (row) => row.sensor_id as SensorId),
          ([sensorId, own]) => [
            sensorId,
            own.map((row) => ({
              band: Number(row.band) as Band,
              first: Number(row.first),
              last: Number(row.last),
              count: Number(row.count)
            }))
          ]
        )
      )
    } satisfies ReadingSummary
  })

  const ping = sql`SELECT 1`.pipe(Effect.asVoid, Effect.mapError(failWith("ping")))

  return ReadingStore.of({ upsert, list, get, history, summarize, ping })
})

/** The readings store on whatever the `SqlClient` points at, its layout detected (see `chooseBackend`). */
export const layer = Layer.effect(ReadingStore, makeWith("detect"))

/** The readings store as `DEXMON_READINGS_BACKEND` says (`timescale`, `postgres`, or `detect`, the default). */
export const layerConfig = Layer.effect(
  ReadingStore,
  Effect.gen(function* () {
    return yield* makeWith(yield* readingsBackendConfig)
  })
)
