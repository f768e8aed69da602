import { mkdirSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { ArchiveStore, Database, S3ArchiveStore, SqlReadingStore } from "@dexmon/ports"
import {
  eventually,
  freshDatabase,
  makeServiceProcess,
  readingHistory,
  requiredServer,
  seedReadingHistory,
  sqlClient,
  tempDir
} from "@dexmon/testing"
import { DuckDBInstance } from "@duckdb/node-api"
import { assert, describe, it } from "@effect/vitest"
import { Clock, ConfigProvider, Effect, Layer, Redacted } from "effect"

// The "done when", on the real servers: 1,000,000 readings over 120 days for 200 users; the archiver
// (`pnpm archive`, as its own process) moves exactly those older than 90 days, each into one object; a run killed
// with SIGKILL halfway and run again ends exactly where an uninterrupted run does; DuckDB reads the rows back.

requiredServer("DATABASE_URL")
requiredServer("S3_ENDPOINT")
const run = `m${Date.now().toString(36)}`
const pgClient = (url: string) => Database.layerPgClient(Redacted.make(url), { maxConnections: 4 })
const clientOf = (url: string) => sqlClient(url, { maxConnections: 4 })

/** `pnpm archive` on one of the fresh databases, as its own process. */
const archiverOn = (database: { readonly name: string; readonly url: string }) =>
  makeServiceProcess("archiver", {
    ...process.env,
    DATABASE_URL: database.url,
    DEXMON_ARCHIVE_PREFIX: `${run}/${database.name}`,
    DEXMON_HOT_RETENTION: "90d"
  })
const runArchiverToExit = Effect.fnUntraced(function* (database: { readonly name: string; readonly url: string }) {
  const exit = yield* (yield* archiverOn(database)).runToExit()
  assert.strictEqual(exit.code, 0, `archiver on ${database.name} failed:\n${exit.output.slice(-3000)}`)
})

/** What a database ends with: the hot rows and the committed objects, as digests and counts. */
const finalState = Effect.fnUntraced(function* (database: { readonly name: string; readonly url: string }) {
  const sql = yield* clientOf(database.url)
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
    objects: objects.map((object) => ({ ...object, key: object.key.slice(`${run}/${database.name}/`.length) })),
    pending: pending!.count
  }
})

describe("archiving 1,000,000 readings", () => {
  it.live(
    "moves exactly the readings older than 90 days, survives kill -9, and an independent Parquet reader reads them back",
    () =>
      Effect.gen(function* () {
        const history = readingHistory({
          now: yield* Clock.currentTimeMillis,
          users: 200,
          readingsPerUser: 5_000,
          days: 120,
          retentionDays: 90
        })
        assert.strictEqual(history.total, 1_000_000)

        // One seeded database, copied: both runs start from byte-identical rows (ids and created_at too).
        const uninterrupted = yield* freshDatabase({ name: `${run}_uninterrupted` })
        yield* Effect.scoped(
          seedReadingHistory(history).pipe(
            Effect.provide(SqlReadingStore.layer.pipe(Layer.provide(pgClient(uninterrupted.url))))
          )
        )
        const killed = yield* freshDatabase({ name: `${run}_killed`, template: uninterrupted.name })

        yield* runArchiverToExit(uninterrupted)

        // The second run is killed once a third of its objects are committed, then run again.
        const expectedObjects = (yield* finalState(uninterrupted)).objects.length
        const killedSql = yield* clientOf(killed.url)
        const victim = yield* archiverOn(killed)
        yield* victim.launch()
        const committedAtKill = yield* eventually(
          killedSql<{ count: number }>`
          SELECT count(*)::int AS count FROM pg_tables WHERE tablename = 'archive_objects'`.pipe(
            Effect.flatMap(([exists]) =>
              exists!.count === 0
                ? Effect.succeed(0)
                : killedSql<{ count: number }>`
                  SELECT count(*)::int AS count FROM archive_objects WHERE state = 'committed'`.pipe(
                    Effect.map(([row]) => row!.count)
                  )
            )
          ),
          (count) => count >= expectedObjects / 3 || victim.hasEnded(),
          // The archiver's exit ends the wait too; the bound (10 minutes) only catches a hung archiver.
          {
            what: `a third of ${expectedObjects} objects committed in ${killed.name}`,
            every: "20 millis",
            times: 30_000
          }
        )
        assert.isFalse(victim.hasEnded(), `the archiver finished before it could be killed (${committedAtKill})`)
        assert.strictEqual((yield* victim.kill9).signal, "SIGKILL")
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
        for (const database of [uninterrupted.name, killed.name]) {
          const listed = (yield* store.list(`${run}/${database}/`)).filter((object) => object.key.endsWith(".parquet"))
          assert.deepStrictEqual(
            listed.map((object) => object.key.slice(`${run}/${database}/`.length)),
            reference.objects.map((object) => object.key)
          )
        }

        // DuckDB, an independent Parquet reader, reads the archive of the killed-and-rerun database.
        const folder = yield* tempDir("duckdb")
        yield* Effect.forEach(
          recovered.objects,
          (object) =>
            Effect.map(store.get(`${run}/${killed.name}/${object.key}`), (bytes) => {
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
