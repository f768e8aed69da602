// Readings-store benchmark on a real PostgreSQL (DATABASE_URL, default the
// machine's 127.0.0.1:5432): rows/s of the batched upsert (conflict rule,
// version, etag, history trigger) at batch sizes 100, 1,000 and 5,000, next to
// raw baselines in the same run on the same server: a plain
// `INSERT ... SELECT FROM unnest ... ON CONFLICT DO NOTHING` through the same
// driver, and COPY (through psql, as @effect/sql-pg does not speak COPY).
// Then the gateway's query latency for a 24-hour window of one user.
//
//   pnpm bench:readings
import { spawnSync } from "node:child_process"
import { EventId, SensorId, UserId } from "@dexmon/domain"
import { Database, ReadingStore, type ReadingWrite, SqlReadingStore } from "@dexmon/ports"
import { freshDatabase } from "@dexmon/testing"
import { NodeRuntime } from "@effect/platform-node"
import { Clock, Console, Context, Effect, Layer, Redacted } from "effect"
import { SqlClient } from "effect/sql"

const ROWS_PER_SIZE = Number(process.env.BENCH_ROWS ?? 50_000)
const HOUR = 3_600_000

const serverUrl = process.env.DATABASE_URL || "postgres://postgres@127.0.0.1:5432/postgres"
const database = `dexmon_bench_${Date.now().toString(36)}`

let eventCounter = 0
const eventId = () => EventId.make(`01900000-0000-7000-8000-${(eventCounter++).toString(16).padStart(12, "0")}`)

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!

const program = Effect.gen(function* () {
  const bench = yield* freshDatabase({ server: serverUrl, name: database })
  const context = yield* Layer.build(
    SqlReadingStore.layer.pipe(Layer.provideMerge(Database.layerPgClient(Redacted.make(bench.url))))
  )
  const store = Context.get(context, ReadingStore)
  const sql = Context.get(context, SqlClient.SqlClient)
  const now = yield* Clock.currentTimeMillis
  // The same shape, unique key and monthly partitioning as glucose_readings, without the conflict rule or history.
  yield* sql`CREATE TABLE raw_readings (LIKE glucose_readings INCLUDING ALL) PARTITION BY RANGE ("timestamp")`
  yield* sql`CREATE TABLE raw_readings_all PARTITION OF raw_readings FOR VALUES FROM (${sql.literal(`'${new Date(now - 40 * HOUR).toISOString()}'`)}) TO (${sql.literal(`'${new Date(now + 40 * HOUR).toISOString()}'`)})`
  yield* sql`CREATE TABLE copy_readings (LIKE glucose_readings INCLUDING DEFAULTS)`

  const rowsFor = (size: number, batch: number, prefix: string): Array<ReadingWrite> =>
    Array.from({ length: size }, (_, i) => ({
      event_id: eventId(),
      sensor_id: SensorId.make(`${prefix}-${(batch * size + i) % 2_000}`),
      user_id: UserId.make(`user-${(batch * size + i) % 200}`),
      timestamp: now - 20 * HOUR + Math.floor((batch * size + i) / 2_000) * 300_000,
      glucose_value: 60 + ((batch * size + i) % 300),
      source: "SENSOR" as const
    }))

  const timed = <A, E>(effect: Effect.Effect<A, E>) =>
    Effect.gen(function* () {
      const started = performance.now()
      yield* effect
      return (performance.now() - started) / 1000
    })

  const results: Array<Record<string, string | number>> = []
  for (const size of [100, 1_000, 5_000]) {
    const batches = Math.ceil(ROWS_PER_SIZE / size)
    const upsertSeconds = yield* timed(
      Effect.forEach(
        Array.from({ length: batches }, (_, b) => b),
        (b) => store.upsert(rowsFor(size, b, `up${size}`)),
        {
          discard: true
        }
      )
    )
    // The same rows again with new values: every row an update (version bump, history row).
    const updateSeconds = yield* timed(
      Effect.forEach(
        Array.from({ length: batches }, (_, b) => b),
        (b) => store.upsert(rowsFor(size, b, `up${size}`).map((w) => ({ ...w, glucose_value: w.glucose_value + 1 }))),
        { discard: true }
      )
    )
    const rawSeconds = yield* timed(
      Effect.forEach(
        Array.from({ length: batches }, (_, b) => b),
        (b) => {
          const rows = rowsFor(size, b, `raw${size}`)
          return sql`INSERT INTO raw_readings (sensor_id, user_id, "timestamp", glucose_value, source, version, etag,
              content_hash, event_id, created_at, updated_at)
            SELECT s, u, t, v, src, 1, 'e', 'h', e, now(), now() FROM unnest(
              ${rows.map((r) => r.sensor_id)}::text[], ${rows.map((r) => r.user_id)}::text[],
              ${rows.map((r) => new Date(r.timestamp).toISOString())}::timestamptz[], ${rows.map((r) => r.glucose_value)}::float8[],
              ${rows.map((r) => r.source)}::text[], ${rows.map((r) => r.event_id)}::uuid[]) AS x(s, u, t, v, src, e)
            ON CONFLICT (sensor_id, "timestamp") DO NOTHING`
        },
        { discard: true }
      )
    )
    const csv = Array.from({ length: batches }, (_, b) =>
      rowsFor(size, b, `copy${size}`)
        .map(
          (r, i) =>
            `${b * size + i},${r.sensor_id},${r.user_id},${new Date(r.timestamp).toISOString()},${r.glucose_value},${r.source},1,e,h,${r.event_id},${new Date(now).toISOString()},${new Date(now).toISOString()}`
        )
        .join("\n")
    )
    const copyStarted = performance.now()
    for (const chunk of csv) {
      const result = spawnSync(
        "psql",
        [
          bench.url,
          "-q",
          "-c",
          "\\copy copy_readings (id, sensor_id, user_id, timestamp, glucose_value, source, version, etag, content_hash, event_id, created_at, updated_at) FROM STDIN WITH (FORMAT csv)"
        ],
        {
          input: `${chunk}\n`
        }
      )
      if (result.status !== 0) return yield* Effect.die(new Error(String(result.stderr)))
    }
    const copySeconds = (performance.now() - copyStarted) / 1000
    const rate = (s: number) => Math.round((batches * size) / s)
    results.push({
      "batch size": size,
      "upsert inserts rows/s": rate(upsertSeconds),
      "upsert updates rows/s": rate(updateSeconds),
      "raw unnest rows/s": rate(rawSeconds),
      "COPY (psql) rows/s": rate(copySeconds),
      "upsert / raw unnest": (rate(upsertSeconds) / rate(rawSeconds)).toFixed(2)
    })
  }
  yield* Console.log(
    `\nReadings store on PostgreSQL ${yield* sql<{ server_version: string }>`SHOW server_version`.pipe(Effect.map((r) => r[0]!.server_version))} (${ROWS_PER_SIZE} rows per batch size)`
  )
  console.table(results)

  // The gateway's query: one user's 24 hours (one reading every 5 minutes from 10 sensors).
  const user = UserId.make("query-user")
  yield* Effect.forEach(
    Array.from({ length: 10 }, (_, s) => s),
    (s) =>
      store.upsert(
        Array.from({ length: 288 }, (_, i) => ({
          event_id: eventId(),
          sensor_id: SensorId.make(`query-${s}`),
          user_id: user,
          timestamp: now - 24 * HOUR + i * 300_000,
          glucose_value: 100,
          source: "SENSOR" as const
        }))
      ),
    { discard: true }
  )
  const latencies: Array<number> = []
  for (let i = 0; i < 300; i++) {
    const started = performance.now()
    let cursor: string | undefined
    do {
      const page = yield* store.list({ user_id: user, from: now - 24 * HOUR, to: now, limit: 1000, cursor })
      cursor = page.next_cursor ?? undefined
    } while (cursor !== undefined)
    latencies.push(performance.now() - started)
  }
  latencies.sort((a, b) => a - b)
  yield* Console.log(
    `gateway query, one user's 24 h (2,880 readings, pages of 1,000): p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms`
  )
  yield* Console.log(`peak memory of this process (VmHWM): ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`)
})

NodeRuntime.runMain(Effect.scoped(program))
