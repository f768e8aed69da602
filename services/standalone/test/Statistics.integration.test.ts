import { DexMonClient } from "@dexmon/sdk"
import { eventually, makeDexMonProcess } from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect } from "effect"

const MINUTE = 60_000
const iso = (millis: number) => new Date(millis).toISOString()

/**
 * Twelve readings five minutes apart: 50 ×3, 100 ×3, 200, 260 ×3, 100 ×2, worked by hand below. Manual
 * readings are left out of statistics, so one is posted too.
 */
const VALUES = [50, 50, 50, 100, 100, 100, 200, 260, 260, 260, 100, 100]

describe("statistics over HTTP, through the SDK", () => {
  it.live(
    "a hand-worked hour: time in ranges, mean, SD, CV, GMI, episodes per sensor, night and day by zone; bad parameters get 400 naming the parameter",
    () =>
      Effect.gen(function* () {
        const dexmon = yield* makeDexMonProcess
        yield* dexmon.start
        const now = yield* Clock.currentTimeMillis
        const t0 = Math.floor(now / (5 * MINUTE)) * 5 * MINUTE - 3 * 60 * MINUTE
        const from = t0
        const to = t0 + 60 * MINUTE
        yield* Effect.gen(function* () {
          const client = yield* DexMonClient
          yield* client.ingestion.postSensor({
            payload: {
              readings: VALUES.map((glucose_value, i) => ({
                sensor_id: "stats-1" as never,
                timestamp: t0 + i * 5 * MINUTE,
                glucose_value
              }))
            }
          })
          yield* client.ingestion.postManual({
            payload: { sensor_id: "stats-1" as never, timestamp: t0 + 2 * MINUTE, glucose_value: 40 }
          })
          const statistics = yield* eventually(
            client.statistics.get({ query: { from, to } }),
            (answer) => answer.readings === VALUES.length,
            { what: "the twelve readings stored", every: "50 millis", times: 400 }
          )
          // 12 readings: 3 below 54, 5 from 70 to 180, 1 from 181 to 250, 3 above 250. Sum 1630, sum of
          // squares 300,300: mean 135.8333, variance 300300/12 - mean² = 6574.3056, SD 81.0821.
          const mean = 1630 / 12
          const sd = Math.sqrt(300_300 / 12 - mean * mean)
          assert.strictEqual(statistics.units, "mg/dL")
          assert.approximately(statistics.mean!, mean, 1e-9)
          assert.approximately(statistics.standard_deviation!, sd, 1e-9)
          assert.approximately(statistics.coefficient_of_variation!, (100 * sd) / mean, 1e-9)
          assert.isTrue(statistics.variability_high, "CV 59.7 % is above 36 %")
          assert.approximately(statistics.gmi_percent!, 3.31 + 0.02392 * mean, 1e-9)
          assert.deepStrictEqual(
            Object.values(statistics.time_in_ranges).map((range) => range.percent),
            [25, 0, (100 * 5) / 12, (100 * 1) / 12, 25]
          )
          // Twelve five-minute slots with data in a one-hour window: CGM active all of it, 25 minutes in range.
          assert.strictEqual(statistics.cgm_active_percent, 100)
          assert.approximately(statistics.time_in_ranges.in_range.minutes, 25, 1e-9)
          assert.isFalse(statistics.data_sufficient, "an hour is not 14 days")
          // Below 54 from t0 for 15 minutes, ended by the 100 at t0+15 (40 minutes at or above follow).
          assert.deepStrictEqual(statistics.episodes.below_54.items, [
            { sensor_ids: ["stats-1" as never], start: t0, end: t0 + 15 * MINUTE, minutes: 15 }
          ])
          assert.deepStrictEqual(statistics.episodes.below_70.items, statistics.episodes.below_54.items)
          // Above 250 from t0+35 for 15 minutes (to the 100 at t0+50); the 10 minutes after are too short to end
          // it, so it is still open when the data ends: 10 minutes from its first to its last reading above.
          assert.deepStrictEqual(statistics.episodes.above_250.items, [
            { sensor_ids: ["stats-1" as never], start: t0 + 35 * MINUTE, end: null, minutes: 10 }
          ])
          // Night and day in UTC (the default): a window three hours old is in one of them.
          assert.strictEqual(statistics.time_zone, "UTC")
          assert.strictEqual(statistics.night.readings + statistics.day.readings, VALUES.length)

          const mmol = yield* client.statistics.get({ query: { from, to, units: "mmol/L" } })
          assert.strictEqual(mmol.units, "mmol/L")
          assert.approximately(mmol.mean!, mean / 18.01559, 1e-9)
          assert.approximately(mmol.standard_deviation!, sd / 18.01559, 1e-9)
          assert.approximately(mmol.gmi_mmol_per_mol!, 12.71 + 4.70587 * (mean / 18.01559), 1e-9)
          assert.strictEqual(mmol.coefficient_of_variation, statistics.coefficient_of_variation)

          const other = yield* client.statistics.get({ query: { from, to, sensor_id: "stats-2" as never } })
          assert.strictEqual(other.readings, 0)
          assert.isNull(other.mean)

          // A second sensor put on beside the first, reading 2 minutes after it: low (50) for its first three
          // readings, then in range (120). Each sensor's series makes its own episodes (interleaved, each would cut
          // the other's into 2-minute pieces), and the low both saw is one episode, to the later of their ends.
          yield* client.ingestion.postSensor({
            payload: {
              readings: VALUES.map((_, i) => ({
                sensor_id: "stats-3" as never,
                timestamp: t0 + i * 5 * MINUTE + 2 * MINUTE,
                glucose_value: i < 3 ? 50 : 120
              }))
            }
          })
          const both = yield* eventually(
            client.statistics.get({ query: { from, to } }),
            (answer) => answer.readings === 2 * VALUES.length,
            { what: "the second sensor's readings stored", every: "50 millis", times: 400 }
          )
          assert.deepStrictEqual(both.episodes.below_54, {
            count: 1,
            minutes: 17,
            items: [{ sensor_ids: ["stats-1", "stats-3"] as never, start: t0, end: t0 + 17 * MINUTE, minutes: 17 }]
          })
          assert.deepStrictEqual(both.episodes.above_250.items, statistics.episodes.above_250.items)

          // Night (00:00-06:00 local) and day by the zone: three lows at 02:00 UTC (07:30 in Kolkata) and three
          // highs at 21:00 UTC (02:30 the next morning in Kolkata) two days ago.
          const midnight = Math.floor(now / (1_440 * MINUTE)) * 1_440 * MINUTE - 2 * 1_440 * MINUTE
          yield* client.ingestion.postSensor({
            payload: {
              readings: [0, 5, 10].flatMap((minute) => [
                { sensor_id: "stats-4" as never, timestamp: midnight + (120 + minute) * MINUTE, glucose_value: 60 },
                { sensor_id: "stats-4" as never, timestamp: midnight + (1_260 + minute) * MINUTE, glucose_value: 200 }
              ])
            }
          })
          const day = { from: midnight, to: midnight + 1_440 * MINUTE, sensor_id: "stats-4" as never }
          const utc = yield* eventually(client.statistics.get({ query: day }), (answer) => answer.readings === 6, {
            what: "the night and day readings stored",
            every: "50 millis",
            times: 400
          })
          assert.deepStrictEqual([utc.night.readings, utc.night.mean, utc.day.readings, utc.day.mean], [3, 60, 3, 200])
          assert.strictEqual(utc.night.time_in_ranges.low.percent, 100)
          const kolkata = yield* client.statistics.get({ query: { ...day, tz: "Asia/Kolkata", units: "mmol/L" } })
          assert.strictEqual(kolkata.time_zone, "Asia/Kolkata")
          assert.deepStrictEqual([kolkata.night.readings, kolkata.day.readings], [3, 3])
          assert.approximately(kolkata.night.mean!, 200 / 18.01559, 1e-9)
          assert.approximately(kolkata.day.mean!, 60 / 18.01559, 1e-9)
          assert.strictEqual(kolkata.night.time_in_ranges.high.percent, 100)
        }).pipe(Effect.provide(DexMonClient.layer({ baseUrl: dexmon.baseUrl, userId: "stats-user" })))

        const refused = [
          { query: `from=${iso(from)}&to=${iso(to)}&units=mg`, path: "units" },
          { query: `from=${iso(from)}&to=${iso(to)}&tz=Mars/Olympus`, path: "tz" },
          { query: `from=${iso(to)}&to=${iso(from)}`, path: "to" },
          { query: `from=${iso(from)}&to=${iso(to)}`.replace("from=", "from=x"), path: "from" },
          { query: `from=${iso(from - 367 * 24 * 60 * MINUTE)}&to=${iso(to)}`, path: "to" },
          { query: `to=${iso(to)}`, path: "from" }
        ]
        for (const { query, path } of refused) {
          const response = yield* Effect.promise(() =>
            fetch(`${dexmon.baseUrl}/api/v1/statistics?${query}`, { headers: { "x-user-id": "stats-user" } })
          )
          const answer = (yield* Effect.promise(() => response.json())) as {
            readonly _tag: string
            readonly issues: ReadonlyArray<{ readonly path: string }>
          }
          assert.strictEqual(response.status, 400, `${query}: ${JSON.stringify(answer)}`)
          assert.strictEqual(answer._tag, "ValidationError")
          assert.isTrue(
            answer.issues.some((issue) => issue.path === path),
            `${query}: expected an issue at ${path}, got ${JSON.stringify(answer.issues)}`
          )
        }
      }),
    120_000
  )
})
