import { type Array as Arr, Effect, Layer, Option, Schedule, Stream } from "effect"
import { SqlClient } from "effect/sql"
import { runMigrations } from "../postgres/Migrations.ts"
import { failureOf } from "../StoreFailure.ts"
import {
  type ConsumeOptions,
  type ConsumerRecord,
  EventLog,
  EventLogError,
  type FollowOptions,
  type PartitionBatch,
  type ProducerRecord,
  type RecordPosition
} from "./EventLog.ts"
import { partitionForKey } from "./Partitioner.ts"
import { Topics } from "./Topics.ts"

/** How long an idle consumer waits before it looks for new records again. */
const IDLE_POLL = "20 millis"
/** How often a consumer tries to take over partitions that another member of its group held. */
const CLAIM_INTERVAL_MS = 1_000

const migrations = {
  "0001_event_log": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE event_log_partitions (
      topic text NOT NULL,
      partition integer NOT NULL,
      next_offset bigint NOT NULL DEFAULT 0,
      PRIMARY KEY (topic, partition)
    )`
    yield* sql`CREATE TABLE event_log_records (
      topic text NOT NULL,
      partition integer NOT NULL,
      "offset" bigint NOT NULL,
      key text NOT NULL,
      value bytea NOT NULL,
      headers jsonb NOT NULL,
      appended_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (topic, partition, "offset")
    )`
    yield* sql`CREATE TABLE event_log_commits (
      group_id text NOT NULL,
      topic text NOT NULL,
      partition integer NOT NULL,
      next_offset bigint NOT NULL,
      committed_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (group_id, topic, partition)
    )`
  }),
  // offsetsForTime looks up the first offset at or after a time per partition; without this it reads
  // every record the partition ever had (the embedded log keeps them all).
  "0002_event_log_record_times": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE INDEX event_log_records_by_time ON event_log_records (topic, partition, appended_at, "offset")`
  })
}

const failWith = failureOf((fields) => new EventLogError(fields))

/**
 * The embedded event log: Kafka's model (partitioned topics, offsets, consumer
 * groups with committed offsets) kept in PostgreSQL tables, so an append that
 * returned survives a crash of the process.
 *
 * - Offsets are dense per partition. An append locks the rows of the partitions
 *   it writes (in partition order, so concurrent appends cannot deadlock) until
 *   it commits, so a consumer never sees offset n+1 before offset n.
 * - A consumer owns a partition while it holds a PostgreSQL advisory lock on
 *   `(group, topic, partition)` on its own connection; when its process dies the
 *   lock goes with the connection and another member takes the partition over.
 */
export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const topics = yield* Topics
  yield* runMigrations("event_log", migrations)

  for (const topic of topics.specs) {
    yield* sql`INSERT INTO event_log_partitions (topic, partition)
      SELECT ${topic.name}, generate_series(0, ${topic.partitions}::int - 1)
      ON CONFLICT DO NOTHING`
  }
  const partitionRows = yield* sql<{ topic: string; partitions: number }>`
    SELECT topic, count(*)::int AS partitions FROM event_log_partitions GROUP BY topic`
  const partitionCounts = new Map(partitionRows.map((row) => [row.topic, Number(row.partitions)]))

  const partitionsOf = (topic: string, operation: string) => {
    const count = partitionCounts.get(topic)
    return count === undefined
      ? Effect.fail(new EventLogError({ operation, message: `unknown topic ${topic}`, transient: false }))
      : Effect.succeed(count)
  }

  const append = Effect.fn("EventLog.append")(function* (topic: string, records: ReadonlyArray<ProducerRecord>) {
    if (records.length === 0) return [] as ReadonlyArray<RecordPosition>
    const count = yield* partitionsOf(topic, "append")
    const partitions = records.map((record) => partitionForKey(record.key, count))
    const touched = [...new Set(partitions)].sort((a, b) => a - b)
    return yield* sql
      .withTransaction(
        Effect.gen(function* () {
          const heads = yield* sql<{ partition: number; next_offset: string }>`
            SELECT partition, next_offset FROM event_log_partitions
            WHERE topic = ${topic} AND partition = ANY(${touched}::int[])
            ORDER BY partition FOR UPDATE`
          const next = new Map(heads.map((row) => [row.partition, Number(row.next_offset)]))
          const offsets = partitions.map((partition) => {
            const offset = next.get(partition)!
            next.set(partition, offset + 1)
            return offset
          })
          // A record without a log time of its own gets the append's (the transaction's), as Kafka's CreateTime.
          // The times go as decimal text, '' for none: the driver cannot type an array of nulls only.
          yield* sql`INSERT INTO event_log_records (topic, partition, "offset", key, value, headers, appended_at)
            SELECT ${topic}, p, o, k, decode(v, 'base64'), h::jsonb,
              coalesce(to_timestamp(nullif(ts, '')::bigint / 1000.0), now())
            FROM unnest(${partitions}::int[], ${offsets}::bigint[], ${records.map((r) => r.key)}::text[],
              ${records.map((r) => Buffer.from(r.value).toString("base64"))}::text[],
              ${records.map((r) => JSON.stringify(r.headers))}::text[],
              ${records.map((r) => (r.timestamp === undefined ? "" : String(r.timestamp)))}::text[]) AS t(p, o, k, v, h, ts)`
          yield* sql`UPDATE event_log_partitions AS lp SET next_offset = t.next_offset
            FROM unnest(${touched}::int[], ${touched.map((p) => next.get(p)!)}::bigint[]) AS t(partition, next_offset)
            WHERE lp.topic = ${topic} AND lp.partition = t.partition`
          return partitions.map((partition, i): RecordPosition => ({ topic, partition, offset: offsets[i]! }))
        })
      )
      .pipe(Effect.mapError(failWith("append")))
  })

  /** Up to `maxBatchSize` records of each partition of `positions` from its offset there, by partition and offset. */
  const readFrom = (topic: string, positions: ReadonlyMap<number, number>, maxBatchSize: number) =>
    sql<{
      partition: number
      offset: string
      key: string
      value: string
      headers: Record<string, string>
      appended_at: Date
    }>`SELECT r.partition, r."offset", r.key, encode(r.value, 'base64') AS value, r.headers, r.appended_at
      FROM unnest(${[...positions.keys()]}::int[], ${[...positions.values()]}::bigint[]) AS o(partition, position)
      CROSS JOIN LATERAL (
        SELECT * FROM event_log_records e
        WHERE e.topic = ${topic} AND e.partition = o.partition AND e."offset" >= o.position
        ORDER BY e."offset" LIMIT ${maxBatchSize}
      ) AS r
      ORDER BY r.partition, r."offset"`.pipe(
      Effect.map((rows) =>
        rows.map(
          (row): ConsumerRecord => ({
            topic,
            partition: row.partition,
            offset: Number(row.offset),
            key: row.key,
            value: Buffer.from(row.value, "base64"),
            headers: typeof row.headers === "string" ? JSON.parse(row.headers) : row.headers,
            timestamp: row.appended_at instanceof Date ? row.appended_at.getTime() : Date.parse(row.appended_at)
          })
        )
      )
    )

  /** Records in order, cut into runs of one partition each. */
  const byPartition = (records: ReadonlyArray<ConsumerRecord>) => {
    const runs = new Map<number, Arr.NonEmptyArray<ConsumerRecord>>()
    for (const record of records) {
      const run = runs.get(record.partition)
      if (run === undefined) runs.set(record.partition, [record])
      else run.push(record)
    }
    return runs as ReadonlyMap<number, Arr.NonEmptyReadonlyArray<ConsumerRecord>>
  }

  const consume = (options: ConsumeOptions): Stream.Stream<PartitionBatch, EventLogError> =>
    Stream.unwrap(
      Effect.gen(function* () {
        const count = yield* partitionsOf(options.topic, "consume")
        const maxBatchSize = options.maxBatchSize ?? 500
        const lockName = `${options.groupId}/${options.topic}`
        // The advisory locks live on this connection: it is held for as long as the stream runs.
        const connection = yield* Effect.acquireRelease(
          sql.reserve.pipe(Effect.mapError(failWith("join group"))),
          (conn) =>
            Effect.ignore(conn.executeUnprepared("SELECT pg_advisory_unlock_all()", [], undefined)).pipe(
              // The partitions are free for other members from here on.
              Effect.andThen(Effect.sync(() => options.onAssigned?.([])))
            )
        )
        const positions = new Map<number, number>()
        let lastClaimAt = 0

        const claim = Effect.gen(function* () {
          lastClaimAt = performance.now()
          let claimed = false
          for (let partition = 0; partition < count; partition++) {
            if (positions.has(partition)) continue
            const [row] = yield* connection.execute(
              "SELECT pg_try_advisory_lock(hashtext($1), $2) AS locked",
              [lockName, partition],
              undefined
            )
            if (row?.locked !== true) continue
            const committed = yield* sql<{ next_offset: string }>`
              SELECT next_offset FROM event_log_commits
              WHERE group_id = ${options.groupId} AND topic = ${options.topic} AND partition = ${partition}`
            positions.set(partition, committed.length === 0 ? 0 : Number(committed[0]!.next_offset))
            claimed = true
          }
          if (claimed) options.onAssigned?.([...positions.keys()].sort((a, b) => a - b))
        }).pipe(Effect.mapError(failWith("join group")))

        const commitFor = (partition: number, nextOffset: number) =>
          sql`INSERT INTO event_log_commits (group_id, topic, partition, next_offset)
            VALUES (${options.groupId}, ${options.topic}, ${partition}, ${nextOffset})
            ON CONFLICT (group_id, topic, partition) DO UPDATE
            SET next_offset = GREATEST(event_log_commits.next_offset, EXCLUDED.next_offset), committed_at = now()`.pipe(
            Effect.asVoid,
            Effect.mapError(failWith("commit")),
            Effect.withSpan("EventLog.commit", { attributes: { partition, nextOffset } })
          )

        const fetchOnce = Effect.gen(function* () {
          if (positions.size < count && performance.now() - lastClaimAt >= CLAIM_INTERVAL_MS) yield* claim
          if (positions.size === 0) return []
          const records = yield* readFrom(options.topic, positions, maxBatchSize)
          return [...byPartition(records)].map(([partition, records]): PartitionBatch => {
            const nextOffset = records[records.length - 1]!.offset + 1
            positions.set(partition, nextOffset)
            return { topic: options.topic, partition, records, commit: commitFor(partition, nextOffset) }
          })
        }).pipe(Effect.mapError(failWith("consume")))

        yield* claim
        const nextBatches = fetchOnce.pipe(
          Effect.repeat({ schedule: Schedule.spaced(IDLE_POLL), until: (batches) => batches.length > 0 })
        )
        return Stream.fromEffectRepeat(nextBatches).pipe(Stream.flattenIterable)
      })
    )

  const endOffsets = Effect.fn("EventLog.endOffsets")(function* (topic: string) {
    yield* partitionsOf(topic, "end offsets")
    const rows = yield* sql<{ partition: number; next_offset: string }>`
      SELECT partition, next_offset FROM event_log_partitions WHERE topic = ${topic}`.pipe(
      Effect.mapError(failWith("end offsets"))
    )
    return new Map(rows.map((row) => [row.partition, Number(row.next_offset)])) as ReadonlyMap<number, number>
  })

  const committedOffsets = Effect.fn("EventLog.committedOffsets")(function* (groupId: string, topic: string) {
    yield* partitionsOf(topic, "committed offsets")
    const rows = yield* sql<{ partition: number; next_offset: string }>`
      SELECT partition, next_offset FROM event_log_commits
      WHERE group_id = ${groupId} AND topic = ${topic}`.pipe(Effect.mapError(failWith("committed offsets")))
    return new Map(rows.map((row) => [row.partition, Number(row.next_offset)])) as ReadonlyMap<number, number>
  })

  /**
   * Polls like `consume` does (every IDLE_POLL while there is nothing new), from positions of its own:
   * no advisory lock, no commit, so any number of follows read the same partitions side by side.
   */
  const follow = (
    topic: string,
    from: ReadonlyMap<number, number>,
    options?: FollowOptions
  ): Stream.Stream<ConsumerRecord, EventLogError> =>
    Stream.unwrap(
      Effect.gen(function* () {
        const maxBatchSize = options?.maxBatchSize ?? 500
        yield* partitionsOf(topic, "follow")
        const ends = yield* endOffsets(topic)
        const start = new Map(
          [...ends].map(([partition, end]) => [partition, Math.min(Math.max(from.get(partition) ?? end, 0), end)])
        )
        const nextRuns = (positions: ReadonlyMap<number, number>) =>
          readFrom(topic, positions, maxBatchSize).pipe(
            Effect.mapError(failWith("follow")),
            Effect.repeat({ schedule: Schedule.spaced(IDLE_POLL), until: (records) => records.length > 0 }),
            Effect.map((records) => {
              const runs = byPartition(records)
              const next = new Map(positions)
              for (const [partition, run] of runs) next.set(partition, run[run.length - 1]!.offset + 1)
              return [[...runs.values()], Option.some(next as ReadonlyMap<number, number>)] as const
            })
          )
        // One partition's run per chunk, as Kafka's batches are.
        return Stream.paginate(start as ReadonlyMap<number, number>, nextRuns).pipe(Stream.flattenArray)
      })
    )

  const offsetsForTime = Effect.fn("EventLog.offsetsForTime")(function* (topic: string, time: number) {
    yield* partitionsOf(topic, "offsets for time")
    const rows = yield* sql<{ partition: number; offset: string }>`
      SELECT p.partition, coalesce(
        (SELECT min(r."offset") FROM event_log_records r
          WHERE r.topic = p.topic AND r.partition = p.partition
            AND r.appended_at >= to_timestamp(${String(Math.ceil(time))}::bigint / 1000.0)),
        p.next_offset) AS "offset"
      FROM event_log_partitions p WHERE p.topic = ${topic}`.pipe(Effect.mapError(failWith("offsets for time")))
    return new Map(rows.map((row) => [row.partition, Number(row.offset)])) as ReadonlyMap<number, number>
  })

  const ping = sql`SELECT 1`.pipe(Effect.asVoid, Effect.mapError(failWith("ping")))

  return EventLog.of({ append, consume, endOffsets, committedOffsets, offsetsForTime, follow, ping })
})

/** The embedded event log, on whatever PostgreSQL the `SqlClient` points at. */
export const layer = Layer.effect(EventLog, make)
