import { HotRetention, Reading, SensorId, UserId } from "@dexmon/domain"
import {
  ArchiveLedger,
  ArchiveStore,
  PostgresArchiveLedger,
  type ReadingRecord,
  ReadingStore,
  type ReadingWrite,
  S3ArchiveStore,
  TimescaleReadingStore
} from "@dexmon/ports"
import { layerTimescaleTest, requiredServer } from "@dexmon/ports/testing"
import { assert, describe, it } from "@effect/vitest"
import { Clock, ConfigProvider, Deferred, Effect, Fiber, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { type ArchiverConfig, makeArchiver } from "../src/index.ts"
import {
  type ArchiveStores,
  archiverSuite,
  assertArchived,
  byPosition,
  eventId,
  hotRows,
  readAll,
  seedWrites
} from "./ArchiverSuite.ts"

const s3 = requiredServer("S3_ENDPOINT")
const HOUR = 3_600_000
const DAY = 24 * HOUR

/** The production pair on TimescaleDB: a private PGlite server per test (a pool of one connection), and S3. */
const stores = (): Layer.Layer<ArchiveStores, unknown> =>
  Layer.mergeAll(
    PostgresArchiveLedger.layer.pipe(Layer.provideMerge(TimescaleReadingStore.layer)),
    S3ArchiveStore.layer.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv())))
  ).pipe(Layer.provideMerge(Layer.fresh(layerTimescaleTest)))

let runCounter = 0

interface Chunk {
  readonly name: string
  /** Schema-qualified, for `regclass`. */
  readonly table: string
  readonly from: number
  readonly to: number
  readonly compressed: boolean
}

/** The hypertable's chunks as TimescaleDB's catalog lists them, oldest first. */
const chunks = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ name: string; table: string; from_ms: number; to_ms: number; compressed: boolean }>`
    SELECT chunk_name AS name, format('%I.%I', chunk_schema, chunk_name) AS table, (extract(epoch FROM range_start) * 1000)::float8 AS from_ms,
      (extract(epoch FROM range_end) * 1000)::float8 AS to_ms, is_compressed AS compressed
    FROM timescaledb_information.chunks WHERE hypertable_name = 'glucose_readings' ORDER BY range_start`
  return rows.map(
    (row): Chunk => ({
      name: row.name,
      table: row.table,
      from: Number(row.from_ms),
      to: Number(row.to_ms),
      compressed: row.compressed
    })
  )
}).pipe(Effect.orDie)

/** Compresses every chunk that ends at or before `before`, as the compression policy would (PGlite runs no jobs). */
const compressOlderThan = (before: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`SELECT compress_chunk(c) FROM show_chunks('glucose_readings',
      older_than => ${new Date(before).toISOString()}::timestamptz) c`
  }).pipe(Effect.orDie)

/**
 * Two users on two sensors each, every two hours (at :30) over six and a half weeks of 2001: at 7-day
 * chunks, seven chunks or so. Fixed instants, so the test places the cutoff inside a chunk it chooses.
 */
const seed = Effect.fnUntraced(function* () {
  const run = `t${(yield* Clock.currentTimeMillis).toString(36)}${runCounter++}`
  const start = Date.parse("2001-01-01T00:30:00.000Z")
  const writes = seedWrites(run, 2, start, start + 45 * DAY)
  yield* (yield* ReadingStore).upsert(writes)
  const users = [...new Set(writes.map((write) => write.user_id))]
  const config: ArchiverConfig = {
    prefix: `test-archive/${run}`,
    maxRowsPerObject: 1000,
    concurrency: 3,
    groupObjects: 4
  }
  const all = yield* chunks
  assert.isAtLeast(all.length, 6, "enough chunks to drop some and keep some")
  // Chunks 0 and 1 compressed, 2 not: all three wholly before the cutoff, which lands inside chunk 3 (at
  // 00:10, between two readings); 4 and later are after it.
  yield* compressOlderThan(all[2]!.from)
  const catalog = yield* chunks
  assert.deepStrictEqual(
    catalog.map((chunk) => chunk.compressed),
    all.map((_, i) => i < 2),
    "the two oldest chunks are compressed"
  )
  const cutoff = all[3]!.from + 3 * DAY + 10 * 60_000
  return { run, users, config, catalog, cutoff, before: yield* hotRows(users), start }
})

/** An archiver whose retention puts its cutoff at `cutoff` now (a run starts a moment later, still between readings). */
const archiverAt = Effect.fnUntraced(function* (config: ArchiverConfig, cutoff: number) {
  const now = yield* Clock.currentTimeMillis
  return yield* makeArchiver(config).pipe(
    Effect.provideService(HotRetention, HotRetention.of({ millis: now - cutoff }))
  )
})

/** Every reading of `users` through the read path (hot, archived and late), in (timestamp, sensor) order. */
const readEverything = (users: ReadonlyArray<UserId>, from: number, to: number) =>
  Effect.forEach(users, (user) => readAll(user, from, to)).pipe(Effect.map((pages) => pages.flat().sort(byPosition)))

const toReadings = (rows: ReadonlyArray<ReadingRecord>) =>
  [...rows].sort(byPosition).map((row) => new Reading({ ...row }))

const provide = <A, E>(effect: Effect.Effect<A, E, ArchiveStores>) => effect.pipe(Effect.provide(stores()))

describe(`Archiver on TimescaleDB (PGlite, one session) and S3 at ${s3}; the cases that need two sessions at once (a run that loses its lock, an event racing a commit) run on PostgreSQL only`, () => {
  archiverSuite("TimescaleDB and S3", stores, { singleSession: true })

  // Issue 17, item 3: on a hypertable a run drops the chunks it emptied, and only those.
  it.live("TimescaleDB: a run drops exactly the chunks it emptied, compressed or not; a second run drops nothing", () =>
    provide(
      Effect.gen(function* () {
        const { users, config, catalog, cutoff: target, before, start } = yield* seed()
        const archiver = yield* archiverAt(config, target)
        const first = yield* archiver.runOnce
        const cutoff = first.cutoff
        const emptied = catalog.filter((chunk) => chunk.to <= cutoff)
        const straddling = catalog.find((chunk) => chunk.from < cutoff && cutoff < chunk.to)!
        assert.deepStrictEqual(
          emptied.map((chunk) => chunk.name),
          catalog.slice(0, 3).map((chunk) => chunk.name),
          "the cutoff landed in chunk 3, as placed"
        )
        assert.isTrue(
          emptied.some((chunk) => chunk.compressed),
          "a compressed chunk is among those to drop"
        )

        assert.deepStrictEqual(
          first.droppedPartitions,
          emptied.map((chunk) => chunk.name),
          "the summary names exactly the dropped chunks"
        )
        assert.deepStrictEqual(
          (yield* chunks).map((chunk) => chunk.name),
          catalog.filter((chunk) => chunk.to > cutoff).map((chunk) => chunk.name),
          "the straddling chunk and the later ones are kept"
        )
        const inStraddling = (row: ReadingRecord) => row.timestamp >= straddling.from && row.timestamp < straddling.to
        const hot = yield* hotRows(users)
        assert.isAbove(
          before.filter((row) => inStraddling(row) && row.timestamp < cutoff).length,
          0,
          "part of the straddling chunk was archived"
        )
        assert.deepStrictEqual(
          hot.filter(inStraddling),
          before.filter((row) => inStraddling(row) && row.timestamp >= cutoff),
          "the straddling chunk keeps its unarchived rows"
        )
        yield* assertArchived(config, before, users, cutoff)
        assert.deepStrictEqual(
          yield* readEverything(users, start, start + 60 * DAY),
          toReadings(before),
          "every reading is read once, hot or archived"
        )

        const kept = yield* chunks
        const second = yield* archiver.runOnce
        assert.deepStrictEqual(second.droppedPartitions, [])
        assert.strictEqual(second.rows, 0)
        assert.deepStrictEqual(yield* chunks, kept)
        assert.deepStrictEqual(yield* readEverything(users, start, start + 60 * DAY), toReadings(before))
      })
    )
  )

  // A reading lands in an old chunk after the run archived its rows and before it drops the emptied chunks
  // (while it writes the first manifest): a user's day not archived, so the reading goes hot, into a chunk
  // that was compressed. Dropping by range alone would delete it with the chunk.
  it.live(
    "TimescaleDB: a chunk before the cutoff that still holds a row is kept with the row, and dropped once it is archived",
    () =>
      provide(
        Effect.gen(function* () {
          const { run, users, config, catalog, cutoff, before, start } = yield* seed()
          const readings = yield* ReadingStore
          const oldest = catalog[0]!
          assert.isTrue(oldest.compressed)
          const late: ReadingWrite = {
            event_id: eventId(),
            sensor_id: SensorId.make(`${run}-late-s`),
            user_id: UserId.make(`${run}-late`),
            timestamp: Math.max(start, oldest.from) + HOUR,
            glucose_value: 123,
            source: "SENSOR"
          }
          assert.isBelow(late.timestamp, oldest.to)
          const store = yield* ArchiveStore
          let inserted = false
          const insertingLate = ArchiveStore.of({
            ...store,
            put: (key, bytes) =>
              Effect.suspend(() => {
                if (inserted || !key.endsWith("_manifest.json")) return Effect.void
                inserted = true
                return readings.upsert([late]).pipe(Effect.orDie)
              }).pipe(Effect.andThen(store.put(key, bytes)))
          })
          const first = yield* (yield* archiverAt(config, cutoff).pipe(
            Effect.provideService(ArchiveStore, insertingLate)
          )).runOnce
          assert.isTrue(inserted)
          assert.deepStrictEqual(
            first.droppedPartitions,
            catalog.slice(1, 3).map((chunk) => chunk.name),
            "the chunk holding the row is kept, the other emptied ones dropped"
          )
          assert.include(
            (yield* chunks).map((chunk) => chunk.name),
            oldest.name
          )
          const hot = yield* readings.get(late.user_id, late.sensor_id, late.timestamp)
          assert.strictEqual(hot?.glucose_value, 123, "the row stays")

          const second = yield* (yield* archiverAt(config, cutoff)).runOnce
          assert.strictEqual(second.rows, 1)
          assert.deepStrictEqual(second.droppedPartitions, [oldest.name])
          assert.isUndefined(yield* readings.get(late.user_id, late.sensor_id, late.timestamp))
          assert.deepStrictEqual(
            (yield* readAll(late.user_id, start, start + 60 * DAY)).map((r) => [r.timestamp, r.glucose_value]),
            [[late.timestamp, 123]],
            "the row is read once, from the archive"
          )
          assert.deepStrictEqual(yield* readEverything(users, start, start + 60 * DAY), toReadings(before))
        })
      )
  )

  // `pnpm start` on PGlite runs the archiver in-process on a pool of one connection: the run lock lives on
  // that one session, where session locks nest, so the ledger keeps a second run of the process out itself.
  it.live(
    "TimescaleDB: on the one session, a run holds the lock and a second run gets ArchiverBusy until it ends",
    () =>
      provide(
        Effect.gen(function* () {
          const ledger = yield* ArchiveLedger
          const sql = yield* SqlClient.SqlClient
          const holding = yield* Deferred.make<number>()
          const release = yield* Deferred.make<void>()
          const first = yield* ledger
            .exclusive(() =>
              sql<{ held: number }>`
              SELECT count(*)::int AS held FROM pg_locks
              WHERE locktype = 'advisory' AND granted AND objid::bigint = ${PostgresArchiveLedger.ARCHIVER_LOCK}`.pipe(
                Effect.flatMap(([row]) => Deferred.succeed(holding, Number(row?.held))),
                Effect.andThen(Deferred.await(release))
              )
            )
            .pipe(Effect.forkChild)
          assert.strictEqual(yield* Deferred.await(holding), 1, "the run holds the lock, and works meanwhile")
          const busy = yield* ledger.exclusive(() => Effect.void).pipe(Effect.flip)
          assert.strictEqual(busy._tag, "ArchiverBusy")
          yield* Deferred.succeed(release, undefined)
          yield* Fiber.join(first)
          assert.strictEqual(yield* ledger.exclusive(() => Effect.succeed("ran")), "ran")
        })
      ).pipe(Effect.orDie)
  )
})
