import { EventId, HotRetention, type Reading, SensorId, UserId } from "@dexmon/domain"
import {
  type ArchiveLedger,
  ArchiveStore,
  type ByteRange,
  PostgresArchiveLedger,
  ReadingStore,
  type ReadingWrite,
  S3ArchiveStore,
  SqlReadingStore
} from "@dexmon/ports"
import { layerServerPostgresTest, requiredServer } from "@dexmon/ports/testing"
import { assert, describe, it } from "@effect/vitest"
import { Clock, ConfigProvider, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import {
  type ArchiverConfig,
  decodeReadings,
  makeArchiver,
  ReadingsQuery,
  ROW_GROUP_ROWS,
  TAIL_BYTES
} from "../src/index.ts"

const MINUTE = 60_000
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR
const RETENTION_DAYS = 10

const database = requiredServer("DATABASE_URL").replace(/\/\/[^@]*@/, "//")
const s3 = requiredServer("S3_ENDPOINT")

let runCounter = 0
let eventCounter = 0
const eventId = () => EventId.make(`01900000-0000-7000-9000-${(++eventCounter).toString(16).padStart(12, "0")}`)

/** One read the query made through the archive store. */
interface StoreRead {
  readonly key: string
  readonly range: ByteRange | "whole"
  readonly bytes: number
}

/**
 * The real S3 store, with every read recorded: counting, not standing in (every call goes to S3).
 * Reads of the manifest are not the query's, and there are none: only objects are counted.
 */
const countingStore = (store: typeof ArchiveStore.Service) => {
  const reads: Array<StoreRead> = []
  const counted = ArchiveStore.of({
    ...store,
    get: (key) =>
      store
        .get(key)
        .pipe(Effect.tap((bytes) => Effect.sync(() => reads.push({ key, range: "whole", bytes: bytes?.length ?? 0 })))),
    getRange: (key, range) =>
      store
        .getRange(key, range)
        .pipe(Effect.tap((part) => Effect.sync(() => reads.push({ key, range, bytes: part?.bytes.length ?? 0 }))))
  })
  return { reads, counted }
}

/** Every page of a query through a fresh `ReadingsQuery` over the counting store; the reads of each page. */
const readPages = (
  query: { user_id: UserId; from: number; to: number; sensor_id?: SensorId | undefined; limit: number },
  config: Record<string, string> = {}
) =>
  Effect.gen(function* () {
    const { reads, counted } = countingStore(yield* ArchiveStore)
    const readings = yield* ReadingsQuery.pipe(
      Effect.provide(
        ReadingsQuery.layer.pipe(
          Layer.provide(Layer.succeed(ArchiveStore, counted)),
          Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown(config)))
        )
      )
    )
    const items: Array<Reading> = []
    const pages: Array<{ readonly items: number; readonly reads: ReadonlyArray<StoreRead> }> = []
    let cursor: string | undefined
    do {
      const before = reads.length
      const page = yield* readings.list({ ...query, cursor })
      items.push(...page.items)
      pages.push({ items: page.items.length, reads: reads.slice(before) })
      cursor = page.next_cursor ?? undefined
      assert.isBelow(pages.length, 10_000, "the pages never end")
    } while (cursor !== undefined)
    return { items, pages, reads }
  })

/**
 * A user's readings over six archived days, every 30 minutes at :15: on the first three days from
 * sensors a and b, on the last three from sensor c alone; plus a few hot readings of sensor a. The
 * archiver cuts each day in objects of 40 rows, so each object holds one or two of the sensors.
 */
const seed = Effect.fnUntraced(function* () {
  const run = `p${Date.now().toString(36)}${runCounter++}`
  const user = UserId.make(`${run}-u`)
  const sensor = (name: string) => SensorId.make(`${run}-${name}`)
  const now = yield* Clock.currentTimeMillis
  const firstDay = Math.floor(now / DAY) * DAY - (RETENTION_DAYS + 8) * DAY
  const writes: Array<ReadingWrite> = []
  const reading = (sensorId: SensorId, timestamp: number, i: number): ReadingWrite => ({
    event_id: eventId(),
    sensor_id: sensorId,
    user_id: user,
    timestamp,
    glucose_value: 60 + (i % 200),
    source: "SENSOR"
  })
  for (let day = 0; day < 6; day++) {
    const sensors = day < 3 ? [sensor("a"), sensor("b")] : [sensor("c")]
    for (let t = firstDay + day * DAY + 15 * MINUTE; t < firstDay + (day + 1) * DAY; t += 30 * MINUTE) {
      for (const id of sensors) writes.push(reading(id, t, writes.length))
    }
  }
  const hotStart = Math.floor(now / HOUR) * HOUR - 5 * HOUR
  for (let t = hotStart; t < hotStart + 4 * HOUR; t += HOUR) writes.push(reading(sensor("a"), t, writes.length))
  yield* (yield* ReadingStore).upsert(writes)
  const config: ArchiverConfig = {
    prefix: `test-pruning/${run}`,
    maxRowsPerObject: 40,
    concurrency: 2,
    groupObjects: 4
  }
  const summary = yield* (yield* makeArchiver(config)).runOnce
  assert.isAbove(summary.objects, 10)
  const from = firstDay
  const to = now + HOUR
  return { user, sensor, firstDay, from, to, config, writes }
})

/** Which sensors each archived object holds, read whole through the uncounted store. */
const sensorsByObject = (prefix: string) =>
  Effect.gen(function* () {
    const store = yield* ArchiveStore
    const sensors = new Map<string, ReadonlySet<string>>()
    for (const object of yield* store.list(`${prefix}/`)) {
      if (!object.key.endsWith(".parquet")) continue
      const rows = yield* decodeReadings((yield* store.get(object.key))!)
      sensors.set(object.key, new Set(rows.map((row) => row.sensor_id)))
    }
    return sensors
  })

/** Forgets what the ledger knows of the objects' sensors, as for objects archived before it kept them. */
const forgetSensors = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`UPDATE archive_objects SET sensor_ids = NULL`
}).pipe(Effect.orDie)

/** A small deterministic generator, so a failing case can be replayed. */
const prng = (seed: number) => () => {
  seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648
  return seed / 2_147_483_648
}

type Stores = ReadingStore | ArchiveLedger | ArchiveStore | SqlClient.SqlClient | HotRetention

const stores = (): Layer.Layer<Stores, unknown> =>
  Layer.mergeAll(
    PostgresArchiveLedger.layer.pipe(Layer.provideMerge(SqlReadingStore.layer)),
    S3ArchiveStore.layer.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv()))),
    Layer.succeed(HotRetention, HotRetention.of({ millis: RETENTION_DAYS * DAY }))
  ).pipe(Layer.provideMerge(Layer.fresh(layerServerPostgresTest)))

const live = <A, E>(name: string, test: () => Effect.Effect<A, E, Stores>) =>
  it.live(name, () => test().pipe(Effect.provide(stores())), 120_000)

describe(`Reading archived ranges on ${database} and S3 at ${s3}: reads bounded by metadata`, () => {
  live("a sensor filter that matches no archived object reads no object at all", () =>
    Effect.gen(function* () {
      const { user, sensor, firstDay, from, to } = yield* seed()
      const none = yield* readPages({ user_id: user, from, to, sensor_id: sensor("none"), limit: 100 })
      assert.deepStrictEqual(none.items, [])
      assert.deepStrictEqual(none.reads, [], "no object is read for a sensor none holds")
      // Sensor b exists, but not in the last three days: a range over those reads nothing either.
      const late = yield* readPages({ user_id: user, from: firstDay + 3 * DAY, to, sensor_id: sensor("b"), limit: 100 })
      assert.deepStrictEqual(late.items, [])
      assert.deepStrictEqual(late.reads, [])
    })
  )

  live("a query for one sensor reads only the objects holding that sensor, and finds all its readings", () =>
    Effect.gen(function* () {
      const { user, sensor, from, to, config, writes } = yield* seed()
      const holding = yield* sensorsByObject(config.prefix)
      for (const name of ["a", "b", "c"]) {
        const id = sensor(name)
        const result = yield* readPages({ user_id: user, from, to, sensor_id: id, limit: 100 })
        const read = new Set(result.reads.map((entry) => entry.key))
        assert.isAbove(read.size, 0)
        for (const key of read) assert.isTrue(holding.get(key)!.has(id), `${key} does not hold ${id}`)
        assert.deepStrictEqual(
          result.items.map((item) => item.timestamp),
          writes.filter((write) => write.sensor_id === id).map((write) => write.timestamp)
        )
      }
    })
  )

  live("any filter answers what the unfiltered read, filtered afterwards, answers; objects without sensors too", () =>
    Effect.gen(function* () {
      const { user, sensor, firstDay, from, to } = yield* seed()
      const everything = (yield* readPages({ user_id: user, from, to, limit: 1000 })).items
      const random = prng(20_261_130)
      const sensors = [undefined, sensor("a"), sensor("b"), sensor("c"), sensor("none")]
      const check = Effect.fnUntraced(function* (round: string) {
        for (let i = 0; i < 12; i++) {
          const start = firstDay + Math.floor(random() * 7 * DAY)
          const end = start + Math.floor(random() * 3 * DAY)
          const sensorId = sensors[Math.floor(random() * sensors.length)]
          const limit = 1 + Math.floor(random() * 60)
          const expected = everything.filter(
            (item) =>
              item.timestamp >= start && item.timestamp < end && (sensorId === undefined || item.sensor_id === sensorId)
          )
          const got = (yield* readPages({ user_id: user, from: start, to: end, sensor_id: sensorId, limit })).items
          assert.deepStrictEqual(got, expected, `${round}: [${start}, ${end}) sensor ${sensorId} limit ${limit}`)
        }
      })
      yield* check("with sensors in the ledger")
      yield* forgetSensors
      yield* check("without sensors in the ledger")
    })
  )

  live("objects whose sensors the ledger does not know are ruled out by their footer alone", () =>
    Effect.gen(function* () {
      const { user, sensor, firstDay, from, to, config } = yield* seed()
      yield* forgetSensors
      const objects = (yield* sensorsByObject(config.prefix)).size
      // "…-none" sorts after every sensor of the objects, so each footer's min/max rules it out.
      const none = yield* readPages({ user_id: user, from, to, sensor_id: sensor("none"), limit: 100 })
      assert.deepStrictEqual(none.items, [])
      assert.strictEqual(none.reads.length, objects, "one read per object")
      for (const read of none.reads) assert.deepStrictEqual(read.range, { suffix: TAIL_BYTES }, read.key)
      // Sensor c on the first three days: between none of their objects' min and max ("a", "b").
      const c = yield* readPages({ user_id: user, from, to: firstDay + 3 * DAY, sensor_id: sensor("c"), limit: 100 })
      assert.deepStrictEqual(c.items, [])
      assert.isAbove(c.reads.length, 0)
      for (const read of c.reads) assert.deepStrictEqual(read.range, { suffix: TAIL_BYTES }, read.key)
    })
  )

  live("a page reads at most the configured number of objects, and the cursor goes on from there", () =>
    Effect.gen(function* () {
      const { user, from, to } = yield* seed()
      const everything = (yield* readPages({ user_id: user, from, to, limit: 1000 })).items
      const bounded = yield* readPages({ user_id: user, from, to, limit: 1000 }, { DEXMON_ARCHIVE_QUERY_OBJECTS: "2" })
      assert.deepStrictEqual(bounded.items, everything)
      assert.isAbove(bounded.pages.length, 3)
      for (const page of bounded.pages) {
        // Two objects beginning after the page's start, and the one it may begin inside.
        assert.isAtMost(new Set(page.reads.map((read) => read.key)).size, 3)
      }
    })
  )

  live("an object with several row groups: a narrow range fetches the footer and only the row groups it needs", () =>
    Effect.gen(function* () {
      const run = `g${Date.now().toString(36)}${runCounter++}`
      const user = UserId.make(`${run}-u`)
      const now = yield* Clock.currentTimeMillis
      const day = Math.floor(now / DAY) * DAY - (RETENTION_DAYS + 3) * DAY
      const sensors = ["a", "b", "c"].map((name) => SensorId.make(`${run}-${name}`))
      const writes: Array<ReadingWrite> = []
      for (let t = day; t < day + DAY; t += MINUTE) {
        for (const sensorId of sensors) {
          writes.push({
            event_id: eventId(),
            sensor_id: sensorId,
            user_id: user,
            timestamp: t,
            glucose_value: 100,
            source: "SENSOR"
          })
        }
      }
      for (let i = 0; i < writes.length; i += 1000) yield* (yield* ReadingStore).upsert(writes.slice(i, i + 1000))
      yield* (yield* makeArchiver({
        prefix: `test-pruning/${run}`,
        maxRowsPerObject: 50_000,
        concurrency: 1,
        groupObjects: 4
      })).runOnce
      const [object] = (yield* (yield* ArchiveStore).list(`test-pruning/${run}/`)).filter((o) =>
        o.key.endsWith(".parquet")
      )
      assert.isAbove(writes.length, 2 * ROW_GROUP_ROWS)

      const from = day + 18 * HOUR
      const hour = yield* readPages({ user_id: user, from, to: from + HOUR, limit: 1000 })
      assert.deepStrictEqual(
        hour.items.map((item) => [item.timestamp, item.sensor_id]),
        writes
          .filter((write) => write.timestamp >= from && write.timestamp < from + HOUR)
          .map((write) => [write.timestamp, write.sensor_id])
      )
      assert.deepStrictEqual(
        hour.reads.map((read) =>
          read.range === "whole" ? "whole object" : "suffix" in read.range ? "footer" : "row group"
        ),
        ["footer", "row group"]
      )
      // Three row groups (2,048, 2,048 and the rest): the footer and one of them is well under the whole.
      const fetched = hour.reads.reduce((n, read) => n + read.bytes, 0)
      assert.isBelow(fetched, (object!.size * 2) / 3, "a one-hour read fetches a part of the object")

      // With the sensors forgotten, a sensor outside every row group's min/max costs the footer alone.
      yield* forgetSensors
      const none = yield* readPages({
        user_id: user,
        from: day,
        to: day + DAY,
        sensor_id: SensorId.make(`${run}-x`),
        limit: 10
      })
      assert.deepStrictEqual(none.items, [])
      assert.deepStrictEqual(
        none.reads.map((read) => read.range),
        [{ suffix: TAIL_BYTES }]
      )
      assert.isAbove(object!.size, 4 * TAIL_BYTES, "the footer read is a small part of the object")
    })
  )
})
