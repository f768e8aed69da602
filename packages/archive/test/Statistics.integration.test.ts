import { HotRetention, SensorId, UserId } from "@dexmon/domain"
import {
  ArchiveLedger,
  type ArchiveLedgerError,
  PostgresArchiveLedger,
  ReadingStore,
  type ReadingWrite,
  S3ArchiveStore,
  SqlReadingStore,
  TimescaleReadingStore
} from "@dexmon/ports"
import { layerServerPostgresTest, layerTimescaleTest, requiredServer } from "@dexmon/ports/testing"
import {
  EPISODE_CONDITIONS,
  type GlucoseStatistics,
  glucoseStatisticsOf,
  MMOL_PER_MGDL_FACTOR,
  NIGHT_BIN_MINUTES,
  nightAndDayOf,
  sensorEpisodesOf,
  sensorRunsOf,
  timeOfDayProfileOf,
  type Units
} from "@dexmon/statistics"
import { referenceLocalMinute, referencePercentile } from "@dexmon/testing"
import { DuckDBInstance } from "@duckdb/node-api"
import { assert, describe, it } from "@effect/vitest"
import { Clock, ConfigProvider, Effect, Exit, Layer } from "effect"
import { makeArchiver, ReadingsQuery } from "../src/index.ts"
import { type ArchiveStores, eventId } from "./ArchiverSuite.ts"

// Issue 19's "done when" for the statistics: equal to an independent computation (DuckDB over the same rows)
// to 0.01 %, on both readings backends, across the hot/archive boundary (with late events laid over archived
// days), in both units, with night and day split in two time zones. Episodes are checked against the episodes of
// each sensor's whole series in one pass, which the statistics package's hand-worked cases pin down: here what is
// checked is that the database's runs joined with the archive's give the same episodes.

requiredServer("DATABASE_URL")
const s3 = requiredServer("S3_ENDPOINT")
const MINUTE = 60_000
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR
const RETENTION_DAYS = 10

/** A small deterministic generator, so a failing case can be replayed. */
const prng = (seed: number) => () => {
  seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648
  return seed / 2_147_483_648
}

let runCounter = 0

interface Truth {
  readonly sensor_id: SensorId
  readonly timestamp: number
  readonly value: number
}

/**
 * Fifteen days of a user's sensor A every five minutes (a seven-hour wave from about 30 to 290 mg/dL with noise,
 * two-hour gaps every third day and single readings missing), sensor B for one day beside it, and manual readings
 * that statistics leave out; the archiver then moves the first five days or so (older than the retention), and
 * late events replace one archived value and fill one archived gap. What each key holds in the end is the truth.
 */
const seed = Effect.fnUntraced(function* () {
  const run = `st${(yield* Clock.currentTimeMillis).toString(36)}${runCounter++}`
  const user = UserId.make(`${run}-u`)
  const sensorA = SensorId.make(`${run}-a`)
  const sensorB = SensorId.make(`${run}-b`)
  const now = yield* Clock.currentTimeMillis
  const from = Math.floor(now / DAY) * DAY - 16 * DAY
  const to = from + 15 * DAY
  const random = prng(19)
  const writes: Array<ReadingWrite> = []
  const write = (sensorId: SensorId, timestamp: number, value: number, source: "SENSOR" | "MANUAL" = "SENSOR") =>
    writes.push({
      event_id: eventId(),
      sensor_id: sensorId,
      user_id: user,
      timestamp,
      glucose_value: Math.min(400, Math.max(40, Math.round(value))),
      source
    })
  for (let t = from; t < to; t += 5 * MINUTE) {
    const day = Math.floor((t - from) / DAY)
    const inGap = day % 3 === 1 && (t - from) % DAY >= 10 * HOUR && (t - from) % DAY < 12 * HOUR
    if (inGap || random() < 0.02) continue
    write(sensorA, t, 160 + 130 * Math.sin((2 * Math.PI * (t - from)) / (7 * HOUR)) + (random() - 0.5) * 20)
  }
  for (let t = from + 3 * DAY + 2 * MINUTE; t < from + 4 * DAY; t += 5 * MINUTE) write(sensorB, t, 120 + random() * 60)
  for (let i = 0; i < 10; i++) write(sensorA, from + i * DAY + 7 * HOUR + MINUTE, 45, "MANUAL")
  // Beyond the window on both sides: never counted.
  write(sensorA, from - 5 * MINUTE, 40)
  write(sensorA, to, 40)
  yield* (yield* ReadingStore).upsert(writes)
  const config = { prefix: `test-statistics/${run}`, maxRowsPerObject: 500, concurrency: 2, groupObjects: 4 }
  const archived = yield* makeArchiver(config).pipe(Effect.flatMap((archiver) => archiver.runOnce))
  assert.isAbove(archived.rows, 1000, "the window reaches well into the archive")

  // Late events on archived days: a new value for an archived key (the later event wins), and a reading in a gap.
  const archivedKey = writes.find((w) => w.source === "SENSOR" && w.timestamp >= from && w.timestamp < from + DAY)!
  const late: Array<ReadingWrite> = [
    { ...archivedKey, event_id: eventId(), glucose_value: 42 },
    { ...archivedKey, event_id: eventId(), timestamp: from + DAY + 11 * HOUR, glucose_value: 300 }
  ]
  yield* (yield* ReadingStore).upsert(late)

  const truth = new Map<string, Truth>()
  for (const w of [...writes, ...late]) {
    const key = `${w.sensor_id}\u0000${w.timestamp}`
    if (w.source === "SENSOR")
      truth.set(key, { sensor_id: w.sensor_id, timestamp: w.timestamp, value: w.glucose_value })
    else truth.delete(key)
  }
  return { user, sensorA, sensorB, from, to, truth: [...truth.values()] }
})

interface Independent {
  readonly n: number
  readonly mean: number
  readonly sd: number
  readonly slots: number
  readonly veryLow: number
  readonly low: number
  readonly inRange: number
  readonly high: number
  readonly veryHigh: number
}

/** The consensus numbers of the rows in `[from, to)` (of one sensor, when named), as DuckDB computes them. */
const duckdb = (rows: ReadonlyArray<Truth>, from: number, to: number, sensorId?: string) =>
  Effect.promise(async () => {
    const db = await DuckDBInstance.create(":memory:")
    const connection = await db.connect()
    await connection.run("CREATE TABLE r (sensor_id VARCHAR, ms BIGINT, v DOUBLE)")
    const appender = await connection.createAppender("r")
    for (const row of rows) {
      appender.appendVarchar(row.sensor_id)
      appender.appendBigInt(BigInt(row.timestamp))
      appender.appendDouble(row.value)
      appender.endRow()
    }
    appender.closeSync()
    const share = (condition: string) => `100.0 * count(*) FILTER (WHERE ${condition}) / count(*)`
    const reader = await connection.runAndReadAll(`
      SELECT count(*)::INTEGER AS n, avg(v) AS mean, stddev_pop(v) AS sd,
        count(DISTINCT ms // 300000)::INTEGER AS slots,
        ${share("v < 54")} AS very_low, ${share("v >= 54 AND v < 70")} AS low,
        ${share("v >= 70 AND v <= 180")} AS in_range, ${share("v > 180 AND v <= 250")} AS high,
        ${share("v > 250")} AS very_high
      FROM r WHERE ms >= ${from} AND ms < ${to} ${sensorId === undefined ? "" : `AND sensor_id = '${sensorId}'`}`)
    const [row] = reader.getRowObjectsJson() as unknown as ReadonlyArray<Record<string, number | string>>
    connection.closeSync()
    return {
      n: Number(row!.n),
      mean: Number(row!.mean),
      sd: Number(row!.sd),
      slots: Number(row!.slots),
      veryLow: Number(row!.very_low),
      low: Number(row!.low),
      inRange: Number(row!.in_range),
      high: Number(row!.high),
      veryHigh: Number(row!.very_high)
    } satisfies Independent
  })

/** Summaries binned by the hour in UTC, where the bins are not what is checked. */
const utc = { time_zone: "UTC", bin_minutes: 60 } as const

/** The rows in `[from, to)` in timestamp order, as readings of a sensor. */
const seriesOf = (rows: ReadonlyArray<Truth>, from: number, to: number) =>
  rows
    .filter((row) => row.timestamp >= from && row.timestamp < to)
    .sort((a, b) => a.timestamp - b.timestamp)
    .map((row) => ({ sensor_id: row.sensor_id, timestamp: row.timestamp, value: row.value }))

/** Runs by sensor, in sensor order, to compare. */
const sorted = (runs: ReadonlyMap<SensorId, unknown>) => [...runs].sort(([a], [b]) => (a < b ? -1 : 1))

/** Equal to 0.01 % of the expected value (or 1e-9 absolute for zero). */
const close = (actual: number | null, expected: number, what: string) => {
  assert.isNotNull(actual, what)
  assert.approximately(actual!, expected, Math.max(Math.abs(expected) * 1e-4, 1e-9), what)
}

const checkAgainst = (statistics: GlucoseStatistics, independent: Independent, units: Units) => {
  const factor = units === "mmol/L" ? 1 / MMOL_PER_MGDL_FACTOR : 1
  assert.strictEqual(statistics.readings, independent.n)
  close(statistics.mean, independent.mean * factor, `mean (${units})`)
  close(statistics.standard_deviation, independent.sd * factor, `standard deviation (${units})`)
  close(statistics.coefficient_of_variation, (100 * independent.sd) / independent.mean, "coefficient of variation")
  close(statistics.gmi_percent, 3.31 + 0.02392 * independent.mean, "GMI %")
  close(statistics.gmi_mmol_per_mol, 12.71 + 4.70587 * (independent.mean / MMOL_PER_MGDL_FACTOR), "GMI mmol/mol")
  const ranges = statistics.time_in_ranges
  close(ranges.very_low.percent, independent.veryLow, "below 54")
  close(ranges.low.percent, independent.low, "54-69")
  close(ranges.in_range.percent, independent.inRange, "70-180")
  close(ranges.high.percent, independent.high, "181-250")
  close(ranges.very_high.percent, independent.veryHigh, "above 250")
  close(ranges.in_range.minutes, (independent.inRange / 100) * independent.slots * 5, "minutes in range")
  close(
    statistics.cgm_active_percent,
    (100 * independent.slots) / Math.ceil(statistics.window_minutes / 5),
    "CGM active"
  )
}

const statisticsSuite = (name: string, stores: () => Layer.Layer<ArchiveStores | HotRetention, unknown>) => {
  const layer = () =>
    ReadingsQuery.layer.pipe(
      Layer.provideMerge(stores()),
      Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({})))
    )
  it.live(
    `${name}: statistics over hot and archived readings equal DuckDB's over the same rows, in mg/dL and mmol/L, for the user and for one sensor; the AGP profile by local time in two zones`,
    () =>
      Effect.gen(function* () {
        const { user, sensorA, sensorB, from, to, truth } = yield* seed()
        const query = yield* ReadingsQuery
        for (const sensorId of [undefined, sensorA, sensorB]) {
          const summary = yield* query.summarize({ ...utc, user_id: user, from, to, sensor_id: sensorId })
          const independent = yield* duckdb(truth, from, to, sensorId)
          assert.isAbove(independent.n, 200)
          for (const units of ["mg/dL", "mmol/L"] as const) {
            const statistics = glucoseStatisticsOf({ ...summary, slots: summary.slots.length, from, to, units })
            checkAgainst(statistics, independent, units)
          }
          // The runs the database made of the hot rows, joined to the archive's, give each sensor's episodes.
          const expectedRuns = sensorRunsOf(
            seriesOf(truth, from, to).filter((row) => sensorId === undefined || row.sensor_id === sensorId)
          )
          assert.deepStrictEqual(sorted(summary.runs), sorted(expectedRuns))
          for (const [kind, condition] of Object.entries(EPISODE_CONDITIONS)) {
            const expected = sensorEpisodesOf(expectedRuns, condition)
            if (sensorId !== sensorB) assert.isAbove(expected.length, 5, `${kind}: the fixture has episodes`)
            assert.deepStrictEqual(sensorEpisodesOf(summary.runs, condition), expected, kind)
          }
        }
        // The AGP's profile in two zones (one a half hour off the hour): each bin's values, hot and archived, as
        // Intl's own formatting of the local time puts them, and the percentiles of the merged values.
        for (const zone of ["America/New_York", "Asia/Kolkata"]) {
          const { by_time_of_day: counts } = yield* query.summarize({
            user_id: user,
            from,
            to,
            time_zone: zone,
            bin_minutes: 15
          })
          const expected = Array.from({ length: 96 }, () => [] as Array<number>)
          for (const row of truth) {
            if (row.timestamp < from || row.timestamp >= to) continue
            expected[Math.floor(referenceLocalMinute(row.timestamp, zone) / 15)]!.push(row.value)
          }
          assert.deepStrictEqual(
            counts.map((bin) => bin.reduce((n, { count }) => n + count, 0)),
            expected.map((values) => values.length),
            `${zone}: readings per bin`
          )
          const profile = timeOfDayProfileOf(counts)
          expected.forEach((values, bin) => {
            for (const p of [5, 25, 50, 75, 95] as const) {
              close(profile[bin]![`p${p}`], referencePercentile(values, p), `${zone} bin ${bin} p${p}`)
            }
          })

          // Night (00:00-06:00 local) and day apart, as the statistics serve them, against DuckDB over the rows
          // whose local time Intl puts there.
          const { by_time_of_day: byQuarterDay } = yield* query.summarize({
            user_id: user,
            from,
            to,
            time_zone: zone,
            bin_minutes: NIGHT_BIN_MINUTES
          })
          assert.strictEqual(NIGHT_BIN_MINUTES, 360)
          const inWindow = truth.filter((row) => row.timestamp >= from && row.timestamp < to)
          const isNight = (row: Truth) => referenceLocalMinute(row.timestamp, zone) < 360
          for (const units of ["mg/dL", "mmol/L"] as const) {
            const periods = nightAndDayOf(byQuarterDay, units)
            for (const [name, period, rows] of [
              ["night", periods.night, inWindow.filter(isNight)],
              ["day", periods.day, inWindow.filter((row) => !isNight(row))]
            ] as const) {
              const independent = yield* duckdb(rows, from, to)
              const factor = units === "mmol/L" ? 1 / MMOL_PER_MGDL_FACTOR : 1
              const what = `${zone} ${name} (${units})`
              assert.strictEqual(period.readings, independent.n, what)
              close(period.mean, independent.mean * factor, `${what}: mean`)
              close(period.standard_deviation, independent.sd * factor, `${what}: SD`)
              close(period.time_in_ranges.very_low.percent, independent.veryLow, `${what}: below 54`)
              close(period.time_in_ranges.in_range.percent, independent.inRange, `${what}: 70-180`)
              close(period.time_in_ranges.very_high.percent, independent.veryHigh, `${what}: above 250`)
            }
          }
        }

        // Clock changes in New York: every 10 minutes over the nights of 2026-03-08 (02:00 skipped) and 2026-11-01
        // (01:00-02:00 twice). The database's `AT TIME ZONE` puts each in the bin of the wall clock Intl shows,
        // the repeated hour's readings twice into the same bins.
        const sensorC = SensorId.make(`${user}-dst`)
        for (const night of [Date.parse("2026-03-08T04:00:00Z"), Date.parse("2026-11-01T03:00:00Z")]) {
          const instants = Array.from({ length: 30 }, (_, i) => night + i * 10 * MINUTE)
          yield* (yield* ReadingStore).upsert(
            instants.map((timestamp, i) => ({
              event_id: eventId(),
              sensor_id: sensorC,
              user_id: user,
              timestamp,
              glucose_value: 100 + i,
              source: "SENSOR" as const
            }))
          )
          const window = { user_id: user, from: night, to: night + 5 * HOUR, sensor_id: sensorC }
          const { by_time_of_day: counts } = yield* query.summarize({
            ...window,
            time_zone: "America/New_York",
            bin_minutes: 15
          })
          const expected = Array.from({ length: 96 }, () => 0)
          for (const t of instants) expected[Math.floor(referenceLocalMinute(t, "America/New_York") / 15)]!++
          assert.deepStrictEqual(
            counts.map((bin) => bin.reduce((n, { count }) => n + count, 0)),
            expected,
            `the night of ${new Date(night).toISOString().slice(0, 10)}`
          )
        }
      }).pipe(Effect.provide(layer())),
    180_000
  )

  it.live(
    `${name}: a day written after later days were archived (hot, before archived days) joins each sensor's runs in time order`,
    () =>
      Effect.gen(function* () {
        const run = `sg${(yield* Clock.currentTimeMillis).toString(36)}${runCounter++}`
        const user = UserId.make(`${run}-u`)
        const sensor = SensorId.make(`${run}-s`)
        const now = yield* Clock.currentTimeMillis
        const first = Math.floor(now / DAY) * DAY - 14 * DAY
        // Every five minutes a three-hour wave from 40 to 280 mg/dL: lows and highs of about 40 minutes each.
        const valueAt = (t: number) => Math.round(160 + 120 * Math.sin((2 * Math.PI * t) / (3 * HOUR)))
        const dayOf = (start: number): Array<ReadingWrite> =>
          Array.from({ length: 288 }, (_, i) => ({
            event_id: eventId(),
            sensor_id: sensor,
            user_id: user,
            timestamp: start + i * 5 * MINUTE,
            glucose_value: valueAt(start + i * 5 * MINUTE),
            source: "SENSOR" as const
          }))
        // Days 0 and 2 are older than the retention: archived. Day 12 stays hot.
        const early = [...dayOf(first), ...dayOf(first + 2 * DAY), ...dayOf(first + 12 * DAY)]
        yield* (yield* ReadingStore).upsert(early)
        const config = { prefix: `test-statistics/${run}`, maxRowsPerObject: 500, concurrency: 2, groupObjects: 4 }
        const archived = yield* makeArchiver(config).pipe(Effect.flatMap((archiver) => archiver.runOnce))
        assert.strictEqual(archived.rows, 2 * 288, "days 0 and 2 archived")
        // Day 1 arrives now (a phone that was offline): no object holds that day, so it is hot, not a late event.
        // A finger stick on that day too: hot and old as well, and never in a summary.
        const straggling = dayOf(first + DAY)
        const fingerStick = { ...straggling[40]!, event_id: eventId(), timestamp: first + DAY + 201 * MINUTE }
        yield* (yield* ReadingStore).upsert([...straggling, { ...fingerStick, glucose_value: 40, source: "MANUAL" }])
        const hotPage = yield* (yield* ReadingStore).list({
          user_id: user,
          from: first + DAY,
          to: first + 2 * DAY,
          limit: 1000
        })
        assert.strictEqual(hotPage.items.length, 289, "day 1 is in the hot store")

        const to = first + 13 * DAY
        const summary = yield* (yield* ReadingsQuery).summarize({ ...utc, user_id: user, from: first, to })
        const ofSensor = yield* (yield* ReadingsQuery).summarize({
          ...utc,
          user_id: user,
          from: first,
          to,
          sensor_id: sensor
        })
        assert.deepStrictEqual(ofSensor, summary, "the one sensor's summary is the user's")
        const truth = [...early, ...straggling].map((w) => ({
          sensor_id: w.sensor_id,
          timestamp: w.timestamp,
          value: w.glucose_value
        }))
        const expectedRuns = sensorRunsOf(seriesOf(truth, first, to))
        assert.deepStrictEqual(sorted(summary.runs), sorted(expectedRuns))
        for (const [kind, condition] of Object.entries(EPISODE_CONDITIONS)) {
          const expected = sensorEpisodesOf(expectedRuns, condition)
          assert.isAbove(expected.length, 20, `${kind}: the fixture has episodes`)
          assert.deepStrictEqual(sensorEpisodesOf(summary.runs, condition), expected, kind)
        }
        const independent = yield* duckdb(truth, first, to)
        checkAgainst(
          glucoseStatisticsOf({ ...summary, slots: summary.slots.length, from: first, to, units: "mg/dL" }),
          independent,
          "mg/dL"
        )
      }).pipe(Effect.provide(layer())),
    120_000
  )
}

const retention = Layer.succeed(HotRetention, HotRetention.of({ millis: RETENTION_DAYS * DAY }))
const s3Store = S3ArchiveStore.layer.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv())))

describe(`Statistics on both readings backends and S3 at ${s3}`, () => {
  statisticsSuite("PostgreSQL", () =>
    Layer.mergeAll(
      PostgresArchiveLedger.layer.pipe(Layer.provideMerge(SqlReadingStore.layer)),
      s3Store,
      retention
    ).pipe(Layer.provideMerge(Layer.fresh(layerServerPostgresTest)))
  )
  statisticsSuite("TimescaleDB", () =>
    Layer.mergeAll(
      PostgresArchiveLedger.layer.pipe(Layer.provideMerge(TimescaleReadingStore.layer)),
      s3Store,
      retention
    ).pipe(Layer.provideMerge(Layer.fresh(layerTimescaleTest)))
  )
})

/**
 * The ledger, with its answers to `objectsOverlapping` changed as `plan` says, one entry per call from the next
 * on (`true`: an extra object appears, as when an archiver run commits between a summary's reads); once the plan
 * is used up, answered as the ledger does.
 */
const ledgerChanging = (plan: Array<boolean>) =>
  Layer.effect(
    ArchiveLedger,
    Effect.gen(function* () {
      const ledger = yield* ArchiveLedger
      return ArchiveLedger.of({
        ...ledger,
        objectsOverlapping: (...args) =>
          ledger
            .objectsOverlapping(...args)
            .pipe(
              Effect.map((objects) =>
                plan.shift() === true && objects[0] !== undefined
                  ? [...objects, { ...objects[0], key: `${objects[0].key}-committed-meanwhile` }]
                  : objects
              )
            )
      })
    })
  )

describe("a summary while the archiver commits", () => {
  const stores = (plan: Array<boolean>) =>
    ReadingsQuery.layer.pipe(
      Layer.provide(ledgerChanging(plan)),
      Layer.provideMerge(
        Layer.mergeAll(
          PostgresArchiveLedger.layer.pipe(Layer.provideMerge(SqlReadingStore.layer)),
          s3Store,
          retention
        ).pipe(Layer.provideMerge(Layer.fresh(layerServerPostgresTest)))
      ),
      Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({})))
    )

  const plan: Array<boolean> = []
  it.live(
    "reads again when the archive changed between its reads, and answers as it would have without the change",
    () =>
      Effect.gen(function* () {
        const { user, from, to } = yield* seed()
        const query = yield* ReadingsQuery
        const settled = yield* query.summarize({ ...utc, user_id: user, from, to })
        // The first attempt's read after the hot part differs from the one before it.
        plan.push(false, true)
        const changedOnce = yield* query.summarize({ ...utc, user_id: user, from, to })
        assert.deepStrictEqual(plan, [], "the summary read the ledger again")
        assert.deepStrictEqual(changedOnce, settled)
      }).pipe(Effect.provide(stores(plan))),
    120_000
  )

  const always: Array<boolean> = []
  it.live(
    "fails as transient (the gateway's 503) when the archive changes between the reads of every attempt",
    () =>
      Effect.gen(function* () {
        const { user, from, to } = yield* seed()
        always.push(false, true, false, true, false, true)
        const exit = yield* Effect.exit((yield* ReadingsQuery).summarize({ ...utc, user_id: user, from, to }))
        assert.deepStrictEqual(always, [], "three attempts")
        const failure = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
        const error = failure?._tag === "Fail" ? (failure.error as ArchiveLedgerError) : undefined
        assert.strictEqual(error?._tag, "ArchiveLedgerError", String(exit))
        assert.isTrue(error?.transient)
        assert.match(error?.message ?? "", /kept changing/)
      }).pipe(Effect.provide(stores(always))),
    120_000
  )
})
