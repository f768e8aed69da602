import { computeEtag, EventId, SensorId, type Source, UserId } from "@dexmon/domain"
import { assert, layer } from "@effect/vitest"
import { ConfigProvider, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import {
  PostgresArchiveLedger,
  ReadingStore,
  ReadingStoreError,
  type ReadingWrite,
  SqlReadingStore,
  TimescaleReadingStore
} from "../src/index.ts"
import { layerServerPostgresTest, layerTimescaleTest } from "../src/testing/index.ts"
import { archiveLedgerContract, hotParts } from "./contracts/ArchiveLedgerContract.ts"
import { readingStoreContract, reference } from "./contracts/ReadingStoreContract.ts"

// The readings store and the archive ledger on a real TimescaleDB (PGlite with the extension, one per
// suite: each `layer` below builds its own server). It serves one session at a time, so the contract
// cases that need two at once run on PostgreSQL only (PostgresStores, ServerPostgresStores).
const hypertableStores = PostgresArchiveLedger.layer.pipe(
  Layer.provideMerge(TimescaleReadingStore.layer),
  Layer.provideMerge(Layer.fresh(layerTimescaleTest))
)

readingStoreContract("TimescaleDB hypertable (PGlite)", hypertableStores, { singleSession: true })
archiveLedgerContract("TimescaleDB hypertable (PGlite)", hypertableStores, { singleSession: true })

const user = UserId.make("timescale-user")
let eventCounter = 0
/** A write appended to partition 0 of the events log: later calls are later events, by offset and by id. */
const write = (sensor: string, timestamp: number, value: number, source: Source = "SENSOR"): ReadingWrite => {
  const n = ++eventCounter
  return {
    event_id: EventId.make(`01900000-0000-7000-8000-${n.toString(16).padStart(12, "0")}`),
    sensor_id: SensorId.make(sensor),
    user_id: user,
    timestamp,
    glucose_value: value,
    source,
    position: { partition: 0, offset: n }
  }
}
const iso = (millis: number) => new Date(millis).toISOString()
const day = 86_400_000

/** Compresses the chunks that lie wholly in [from, to), as the compression policy would (PGlite runs no jobs). */
const compressChunks = (from: number, to: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    return yield* sql<{ chunk: string }>`
      SELECT compress_chunk(c, if_not_compressed => true)::text AS chunk
      FROM show_chunks('glucose_readings', newer_than => ${iso(from)}::timestamptz, older_than => ${iso(to)}::timestamptz) c`
  })

/** The chunks of `glucose_readings` that overlap [from, to), whether each is compressed. */
const chunksIn = (from: number, to: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    return yield* sql<{ name: string; compressed: boolean }>`
      SELECT chunk_name AS name, is_compressed AS compressed FROM timescaledb_information.chunks
      WHERE hypertable_name = 'glucose_readings'
        AND range_start < ${iso(to)}::timestamptz AND range_end > ${iso(from)}::timestamptz
      ORDER BY range_start`
  })

/** A sensor's stored readings equal the domain's conflict rule applied to `writes` in order. */
const assertMatchesReference = (sensor: string, at: number, writes: ReadonlyArray<ReadingWrite>) =>
  Effect.gen(function* () {
    const store = yield* ReadingStore
    const stored = (yield* store.list({
      user_id: user,
      sensor_id: SensorId.make(sensor),
      from: at - day,
      to: at + day,
      limit: 100
    })).items
    const expected = [...reference(writes).values()].sort((a, b) => a.timestamp - b.timestamp)
    assert.deepStrictEqual(
      stored.map((r) => [r.timestamp, r.glucose_value, r.source, r.version, r.etag]),
      expected.map((s) => [s.timestamp, s.glucose_value, s.source, s.version, computeEtag(s, s.version)]),
      sensor
    )
  })

// Built with the default (detect): on a fresh TimescaleDB that must be the hypertable.
const detected = SqlReadingStore.layer.pipe(Layer.provideMerge(Layer.fresh(layerTimescaleTest)))

layer(detected, { timeout: 120_000, excludeTestServices: true })("readings on TimescaleDB (PGlite)", (it) => {
  it.effect(
    "detect lays out a hypertable on the timestamp in chunks of 7 days, compressed by sensor, with a compression policy",
    () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const hypertables = yield* sql<{ name: string; compression: boolean }>`
          SELECT hypertable_name AS name, compression_enabled AS compression FROM timescaledb_information.hypertables`
        assert.deepStrictEqual(hypertables, [{ name: "glucose_readings", compression: true }])
        const dimensions = yield* sql<{ column: string; interval: string }>`
          SELECT column_name AS column, time_interval::text AS interval FROM timescaledb_information.dimensions
          WHERE hypertable_name = 'glucose_readings'`
        assert.deepStrictEqual(dimensions, [{ column: "timestamp", interval: "7 days" }])
        const segmentBy = yield* sql<{ column: string }>`
          SELECT attname AS column FROM timescaledb_information.compression_settings
          WHERE hypertable_name = 'glucose_readings' AND segmentby_column_index IS NOT NULL
          ORDER BY segmentby_column_index`
        assert.deepStrictEqual(
          segmentBy.map((row) => row.column),
          ["sensor_id"]
        )
        const jobs = yield* sql<{ proc: string; after: string }>`
          SELECT proc_name AS proc, config ->> 'compress_after' AS after FROM timescaledb_information.jobs
          WHERE hypertable_name = 'glucose_readings'`
        assert.deepStrictEqual(jobs, [{ proc: "policy_compression", after: "30 days" }])
        assert.isFalse(
          (yield* hotParts).some((name) => name.startsWith("glucose_readings_")),
          "no monthly partitions: the hypertable makes its chunks"
        )
      })
  )

  it.effect(
    "an upsert into a compressed chunk applies the conflict rule: replay, later value, MANUAL over SENSOR, SENSOR over MANUAL, another user",
    () =>
      Effect.gen(function* () {
        const store = yield* ReadingStore
        const at = Date.parse("2026-01-14T10:00:00.000Z")
        const run = `c${Date.now().toString(36)}`
        const [replaced, sensorKept, manualReplaced, intruded] = ["a", "b", "c", "d"].map((s) => `${run}-${s}`)
        const first = {
          [replaced!]: write(replaced!, at, 100),
          [sensorKept!]: write(sensorKept!, at, 100),
          [manualReplaced!]: write(manualReplaced!, at, 100, "MANUAL"),
          [intruded!]: write(intruded!, at, 100)
        }
        // A few more rows per sensor, so each compressed segment holds more than the row that changes.
        const neighbours = Object.keys(first).flatMap((sensor) =>
          [1, 2, 3].map((i) => write(sensor, at + i * 300_000, 90 + i))
        )
        yield* store.upsert([...Object.values(first), ...neighbours])
        const compressed = yield* compressChunks(at - 7 * day, at + 7 * day)
        assert.lengthOf(compressed, 1)
        assert.deepStrictEqual(
          (yield* chunksIn(at, at + 1)).map((chunk) => chunk.compressed),
          [true]
        )
        const before = yield* store.get(user, SensorId.make(replaced!), at)

        // A replay (the same event again) changes nothing, not even the update time.
        assert.deepStrictEqual(yield* store.upsert([first[replaced!]!]), { inserted: 0, replaced: 0, unchanged: 1 })
        assert.deepStrictEqual(yield* store.get(user, SensorId.make(replaced!), at), before)
        // A later event with another value replaces it.
        const later = write(replaced!, at, 120)
        assert.deepStrictEqual(yield* store.upsert([later]), { inserted: 0, replaced: 1, unchanged: 0 })
        // A MANUAL value never replaces a SENSOR one; a SENSOR value replaces a MANUAL one.
        const manual = write(sensorKept!, at, 80, "MANUAL")
        assert.deepStrictEqual(yield* store.upsert([manual]), { inserted: 0, replaced: 0, unchanged: 1 })
        const sensorValue = write(manualReplaced!, at, 110)
        assert.deepStrictEqual(yield* store.upsert([sensorValue]), { inserted: 0, replaced: 1, unchanged: 0 })
        // Another user's event for an existing reading changes nothing.
        const intruder = { ...write(intruded!, at, 180), user_id: UserId.make("someone-else") }
        assert.deepStrictEqual(yield* store.upsert([intruder]), { inserted: 0, replaced: 0, unchanged: 1 })

        const ofSensor = (sensor: string, ...writes: ReadonlyArray<ReadingWrite>) => [
          ...neighbours.filter((w) => w.sensor_id === sensor),
          first[sensor]!,
          ...writes
        ]
        yield* assertMatchesReference(replaced!, at, ofSensor(replaced!, first[replaced!]!, later))
        yield* assertMatchesReference(sensorKept!, at, ofSensor(sensorKept!, manual))
        yield* assertMatchesReference(manualReplaced!, at, ofSensor(manualReplaced!, sensorValue))
        yield* assertMatchesReference(intruded!, at, ofSensor(intruded!))
        const [reading] = (yield* store.list({
          user_id: user,
          sensor_id: SensorId.make(replaced!),
          from: at,
          to: at + 1,
          limit: 1
        })).items
        assert.deepStrictEqual([reading!.glucose_value, reading!.version], [120, 2])
        assert.strictEqual(reading!.etag, computeEtag(later, 2))

        // The history trigger kept each superseded value, and only those.
        const history = (sensor: string) =>
          store
            .history(SensorId.make(sensor), at)
            .pipe(Effect.map((rows) => rows.map((r) => [r.source, r.glucose_value, r.version, r.etag])))
        assert.deepStrictEqual(yield* history(replaced!), [["SENSOR", 100, 1, before!.etag]])
        assert.deepStrictEqual(yield* history(manualReplaced!), [
          ["MANUAL", 100, 1, computeEtag(first[manualReplaced!]!, 1)]
        ])
        assert.deepStrictEqual(yield* history(sensorKept!), [])
        assert.deepStrictEqual(yield* history(intruded!), [])
      })
  )

  it.effect("pages through readings in compressed and uncompressed chunks in order, each once", () =>
    Effect.gen(function* () {
      const store = yield* ReadingStore
      const start = Date.parse("2025-03-03T00:00:00.000Z")
      const end = start + 28 * day
      const run = `p${Date.now().toString(36)}`
      // Two sensors at the same instants every two hours for four weeks: the order's tie-break is the sensor.
      const instants = Array.from({ length: 28 * 12 }, (_, i) => start + i * 2 * 3_600_000)
      const sensors = [`${run}-1`, `${run}-2`]
      const all = instants.flatMap((t, i) => sensors.map((s) => write(s, t, 80 + (i % 50))))
      // One statement of well over 64 KiB: it reaches the server in several TCP reads, which the harness's
      // server joins before PGlite sees them (infra/timescale/serve.ts; electric-sql/pglite#775).
      yield* store.upsert(all)
      yield* store.upsert([{ ...write(`${run}-other`, start + day, 100), user_id: UserId.make("someone-else") }])
      // The first two weeks' chunks compressed, the rest not.
      assert.isNotEmpty(yield* compressChunks(start - 7 * day, start + 14 * day))
      const chunks = yield* chunksIn(start, end)
      assert.isTrue(chunks.some((chunk) => chunk.compressed) && chunks.some((chunk) => !chunk.compressed))

      const seen: Array<readonly [number, string]> = []
      let cursor: string | undefined
      do {
        const page = yield* store.list({ user_id: user, from: start, to: end, limit: 25, cursor })
        assert.isAtMost(page.items.length, 25)
        seen.push(...page.items.map((r) => [r.timestamp, r.sensor_id] as const))
        cursor = page.next_cursor ?? undefined
      } while (cursor !== undefined)
      assert.deepStrictEqual(
        seen,
        instants.flatMap((t) => sensors.map((s) => [t, s] as const))
      )
    })
  )
})

const withBackend = (backend: string) =>
  ConfigProvider.layer(ConfigProvider.fromEnvRecord({ DEXMON_READINGS_BACKEND: backend }))
/** Starts the readings store as `DEXMON_READINGS_BACKEND=backend` says, on the database of the suite. */
const startStore = (backend: string) =>
  Layer.build(SqlReadingStore.layerConfig.pipe(Layer.provide(withBackend(backend)))).pipe(Effect.scoped, Effect.asVoid)
const startRefused = (store: Effect.Effect<unknown, unknown, SqlClient.SqlClient>, message: RegExp) =>
  Effect.gen(function* () {
    const error = yield* Effect.flip(store)
    assert.instanceOf(error, ReadingStoreError)
    assert.strictEqual((error as ReadingStoreError).operation, "choose backend")
    assert.match((error as ReadingStoreError).message, message)
  })
const partitioned = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<{ partitioned: boolean }>`
    SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass('glucose_readings')) AS partitioned`
  return row?.partitioned === true
})

layer(Layer.fresh(layerTimescaleTest), { timeout: 120_000, excludeTestServices: true })(
  "choosing the readings backend on TimescaleDB (PGlite)",
  (it) => {
    it.effect(
      "DEXMON_READINGS_BACKEND=postgres lays out monthly partitions; timescale then refuses the partitioned table",
      () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          yield* startStore("postgres")
          assert.isTrue(yield* partitioned)
          const parts = yield* hotParts
          assert.isNotEmpty(parts)
          assert.isTrue(parts.every((name) => /^glucose_readings_\d{6}$/.test(name)))
          const hypertables = yield* sql`SELECT 1 FROM timescaledb_information.hypertables`
          assert.lengthOf(hypertables, 0)
          yield* startRefused(startStore("timescale"), /DEXMON_READINGS_BACKEND=timescale.*partitioned by month/)
          yield* startRefused(
            Layer.build(TimescaleReadingStore.layer).pipe(Effect.scoped),
            /DEXMON_READINGS_BACKEND=timescale.*partitioned by month/
          )
          assert.isTrue(yield* partitioned, "left as it was")
        })
    )
  }
)

layer(Layer.fresh(layerServerPostgresTest), { timeout: 60_000, excludeTestServices: true })(
  "choosing the readings backend on the machine's PostgreSQL (no TimescaleDB)",
  (it) => {
    it.effect("timescale fails to start, laying out nothing; detect lays out monthly partitions", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* startRefused(startStore("timescale"), /no timescaledb extension/)
        const [table] = yield* sql<{ exists: boolean }>`SELECT to_regclass('glucose_readings') IS NOT NULL AS exists`
        assert.isFalse(table!.exists)
        yield* startStore("detect")
        assert.isTrue(yield* partitioned)
      })
    )
  }
)
