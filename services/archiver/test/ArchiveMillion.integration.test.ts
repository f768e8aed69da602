import { type ChildProcess, spawn } from "node:child_process"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { ArchiveStore, Database, S3ArchiveStore, SqlReadingStore } from "@dexmon/ports"
import { readingHistory, requiredServer, seedReadingHistory } from "@dexmon/ports/testing"
import { DuckDBInstance } from "@duckdb/node-api"
import { assert, describe, it } from "@effect/vitest"
import { Clock, ConfigProvider, Context, Effect, Layer, Redacted, Schedule } from "effect"
import { SqlClient } from "effect/sql"

// The "done when", on the real servers: 1,000,000 readings over 120 days for 200 users; the archiver
// (`pnpm archive`, as its own process) moves exactly those older than 90 days, each into one object; a run killed
// with SIGKILL halfway and run again ends exactly where an uninterrupted run does; DuckDB reads the rows back.

const serverUrl = requiredServer("DATABASE_URL")
requiredServer("S3_ENDPOINT")
const archiverMain = resolve(import.meta.dirname, "../src/main.ts")
const run = `m${Date.now().toString(36)}`
const databaseUrl = (name: string) => {
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  return url.toString()
}
const pgClient = (url: string) => Database.layerPgClient(Redacted.make(url), { maxConnections: 4 })
const clientOf = (url: string) =>
  Effect.map(Layer.build(pgClient(url)), (context) => Context.get(context, SqlClient.SqlClient))

const startArchiver = (database: string) => {
  const output: Array<string> = []
  const child = spawn(process.execPath, [archiverMain], {
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl(database),
      DEXMON_ARCHIVE_PREFIX: `${run}/${database}`,
      DEXMON_HOT_RETENTION: "90d",
      DEXMON_LOG_FORMAT: "json"
    },
    stdio: ["ignore", "pipe", "pipe"]
  })
  child.stdout?.on("data", (chunk) => output.push(String(chunk)))
  child.stderr?.on("data", (chunk) => output.push(String(chunk)))
  return { child, output }
}
const exitOf = (child: ChildProcess) =>
  Effect.callback<{ code: number | null; signal: NodeJS.Signals | null }>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      return resume(Effect.succeed({ code: child.exitCode, signal: child.signalCode }))
    }
    child.once("exit", (code, signal) => resume(Effect.succeed({ code, signal })))
  })
const runArchiverToExit = Effect.fnUntraced(function* (database: string) {
  const { child, output } = startArchiver(database)
  const exit = yield* exitOf(child)
  assert.strictEqual(exit.code, 0, `archiver on ${database} failed:\n${output.join("").slice(-3000)}`)
})

/** What a database ends with: the hot rows and the committed objects, as digests and counts. */
const finalState = Effect.fnUntraced(function* (database: string) {
  const sql = yield* clientOf(databaseUrl(database))
  const [hot] = yield* sql<{ rows: number; digest: string }>`
    SELECT count(*)::int AS rows,
      md5(string_agg(sensor_id || '|' || "timestamp" || '|' || glucose_value || '|' || etag, ',' ORDER BY sensor_id, "timestamp")) AS digest
    FROM glucose_readings`
  const objects = yield* sql<{ key: string; row_count: number; checksum: string }>`
    SELECT key, row_count, checksum FROM archive_objects WHERE state = 'committed' ORDER BY key`
  const [pending] = yield* sql<{
    count: number
  }>`SELECT count(*)::int AS count FROM archive_objects WHERE state = 'pending'`
  return {
    hotRows: hot!.rows,
    hotDigest: hot!.digest,
    archivedRows: objects.reduce((n, object) => n + object.row_count, 0),
    objects: objects.map((object) => ({ ...object, key: object.key.slice(`${run}/${database}/`.length) })),
    pending: pending!.count
  }
})

describe("archiving 1,000,000 readings", () => {
  it.live(
    "moves exactly the readings older than 90 days, survives kill -9, and an independent Parquet reader reads them back",
    () =>
      Effect.gen(function* () {
        const admin = yield* clientOf(serverUrl)
        const [uninterrupted, killed] = [`${run}_uninterrupted`, `${run}_killed`]
        yield* Effect.addFinalizer(() =>
          Effect.ignore(
            Effect.all([
              admin.unsafe(`DROP DATABASE IF EXISTS ${uninterrupted} WITH (FORCE)`),
              admin.unsafe(`DROP DATABASE IF EXISTS ${killed} WITH (FORCE)`)
            ])
          )
        )
        const history = readingHistory({
          now: yield* Clock.currentTimeMillis,
          users: 200,
          readingsPerUser: 5_000,
          days: 120,
          retentionDays: 90
        })
        assert.strictEqual(history.total, 1_000_000)

        // One seeded database, copied: both runs start from byte-identical rows (ids and created_at too).
        yield* admin.unsafe(`CREATE DATABASE ${uninterrupted}`)
        yield* Effect.scoped(
          seedReadingHistory(history).pipe(
            Effect.provide(SqlReadingStore.layer.pipe(Layer.provide(pgClient(databaseUrl(uninterrupted)))))
          )
        )
        yield* admin.unsafe(`CREATE DATABASE ${killed} TEMPLATE ${uninterrupted}`)

        yield* runArchiverToExit(uninterrupted)

        // The second run is killed once a third of its objects are committed, then run again.
        const expectedObjects = (yield* finalState(uninterrupted)).objects.length
        const killedSql = yield* clientOf(databaseUrl(killed))
        const victim = startArchiver(killed)
        const committedAtKill = yield* killedSql<{ count: number }>`
          SELECT count(*)::int AS count FROM pg_tables WHERE tablename = 'archive_objects'`.pipe(
          Effect.flatMap(([exists]) =>
            exists!.count === 0
              ? Effect.succeed(0)
              : killedSql<{ count: number }>`
                  SELECT count(*)::int AS count FROM archive_objects WHERE state = 'committed'`.pipe(
                  Effect.map(([row]) => row!.count)
                )
          ),
          Effect.repeat({
            schedule: Schedule.spaced("20 millis"),
            until: (count) => count >= expectedObjects / 3 || victim.child.exitCode !== null
          })
        )
        assert.isNull(victim.child.exitCode, `the archiver finished before it could be killed (${committedAtKill})`)
        victim.child.kill("SIGKILL")
        assert.strictEqual((yield* exitOf(victim.child)).signal, "SIGKILL")
        const atKill = yield* finalState(killed)
        assert.isBelow(atKill.objects.length, expectedObjects, "killed halfway, not at the end")
        yield* runArchiverToExit(killed)

        const reference = yield* finalState(uninterrupted)
        const recovered = yield* finalState(killed)
        assert.strictEqual(reference.hotRows, history.total - history.due)
        assert.strictEqual(reference.archivedRows, history.due)
        assert.strictEqual(reference.pending, 0)
        assert.deepStrictEqual(recovered, reference, "the killed-and-rerun archive equals the uninterrupted one")

        // The bucket holds exactly the committed objects (plus manifests), for both runs.
        const store = yield* ArchiveStore.pipe(
          Effect.provide(S3ArchiveStore.layer.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv()))))
        )
        for (const database of [uninterrupted, killed]) {
          const listed = (yield* store.list(`${run}/${database}/`)).filter((object) => object.key.endsWith(".parquet"))
          assert.deepStrictEqual(
            listed.map((object) => object.key.slice(`${run}/${database}/`.length)),
            reference.objects.map((object) => object.key)
          )
        }

        // DuckDB, an independent Parquet reader, reads the archive of the killed-and-rerun database.
        const folder = mkdtempSync(join(tmpdir(), "dexmon-duckdb-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(folder, { recursive: true, force: true })))
        yield* Effect.forEach(
          recovered.objects,
          (object) =>
            Effect.map(store.get(`${run}/${killed}/${object.key}`), (bytes) => {
              const path = join(folder, object.key)
              mkdirSync(dirname(path), { recursive: true })
              writeFileSync(path, bytes!)
            }),
          { concurrency: 16, discard: true }
        )
        const duck = yield* Effect.promise(() => DuckDBInstance.create(":memory:").then((db) => db.connect()))
        const scan = `read_parquet('${folder}/**/*.parquet', hive_partitioning = true)`
        const totals = yield* Effect.promise(() =>
          duck
            .runAndReadAll(`SELECT count(*)::INTEGER AS n,
              count(DISTINCT (sensor_id, "timestamp"))::INTEGER AS distinct_readings,
              count(*) FILTER (WHERE strftime("timestamp", '%Y-%m-%d') <> CAST("date" AS VARCHAR))::INTEGER AS wrong_date,
              count(*) FILTER (WHERE CAST("user" AS VARCHAR) <> user_id)::INTEGER AS wrong_user
              FROM ${scan}`)
            .then((reader) => reader.getRowObjectsJS()[0]!)
        )
        assert.deepStrictEqual(totals, { n: history.due, distinct_readings: history.due, wrong_date: 0, wrong_user: 0 })
        const rows = yield* Effect.promise(() =>
          duck
            .runAndReadAll(`SELECT sensor_id, user_id, epoch_ms("timestamp")::DOUBLE AS ms, glucose_value, source
              FROM ${scan} ORDER BY sensor_id, ms`)
            .then((reader) => reader.getRowsJS())
        )
        const expected: Array<unknown> = []
        for (let u = 0; u < 200; u++) {
          for (let i = 0; ; i++) {
            const write = history.write(u, i)
            if (write.timestamp >= history.boundary) break
            expected.push([write.sensor_id, write.user_id, write.timestamp, write.glucose_value, write.source])
          }
        }
        expected.sort((a, b) => {
          const [sa, , ta] = a as [string, string, number]
          const [sb, , tb] = b as [string, string, number]
          return sa < sb ? -1 : sa > sb ? 1 : ta - tb
        })
        assert.strictEqual(rows.length, expected.length)
        assert.deepStrictEqual(rows, expected)
      }),
    { timeout: 900_000 }
  )
})
