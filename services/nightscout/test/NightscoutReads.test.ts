import { ReadingsQuery } from "@dexmon/archive"
import { type Reading, SensorId, UserId } from "@dexmon/domain"
import { UserAlertSettings } from "@dexmon/gateway"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import { entriesSpecFor, parseEntriesFind } from "../src/EntriesOut.ts"
import { notModified } from "../src/NightscoutHttp.ts"
import { MAX_SCANNED_READINGS, NightscoutReads } from "../src/NightscoutReads.ts"

const MINUTE = 60_000
const DAY = 86_400_000
const now = Date.UTC(2026, 10, 30, 12, 0)
const user = UserId.make("reads-user")

/**
 * The scan of `NightscoutReads.entries` over readings held in memory: the store's paging is not what is under
 * test here (its contract suites cover it), only which ranges the scan asks for and what it serves from them.
 */
const layerOver = (readings: ReadonlyArray<Reading>, asked: Array<readonly [number, number]>) =>
  NightscoutReads.layer.pipe(
    Layer.provide(
      Layer.mergeAll(
        Layer.succeed(
          ReadingsQuery,
          ReadingsQuery.of({
            list: (query) =>
              Effect.sync(() => {
                if (query.cursor === undefined) asked.push([query.from, query.to])
                const all = readings.filter(
                  (reading) =>
                    reading.timestamp >= query.from &&
                    reading.timestamp < query.to &&
                    (query.sensor_id === undefined || reading.sensor_id === query.sensor_id)
                )
                const offset = query.cursor === undefined ? 0 : Number(query.cursor)
                const items = all.slice(offset, offset + query.limit)
                const next = offset + query.limit < all.length ? String(offset + query.limit) : null
                return { items, next_cursor: next }
              }),
            summarize: () => Effect.die("not used")
          })
        ),
        Layer.succeed(
          UserAlertSettings,
          UserAlertSettings.of({ read: () => Effect.die("not used"), replace: () => Effect.die("not used") })
        )
      )
    )
  )

const everyFiveMinutes = (from: number, to: number, value: (at: number) => number = () => 100): Array<Reading> => {
  const readings: Array<Reading> = []
  for (let at = from; at < to; at += 5 * MINUTE) {
    readings.push({
      id: String(at),
      sensor_id: SensorId.make("G7-reads"),
      user_id: user,
      timestamp: at,
      glucose_value: value(at),
      source: "SENSOR",
      version: 1,
      etag: "e",
      created_at: at,
      updated_at: at
    } as Reading)
  }
  return readings
}

const read = (readings: ReadonlyArray<Reading>, query: string, count: number) => {
  const asked: Array<readonly [number, number]> = []
  return Effect.gen(function* () {
    yield* TestClock.setTime(now)
    const find = parseEntriesFind(new URLSearchParams(query), entriesSpecFor("json"), now)
    assert.strictEqual(find._tag, "Filter")
    if (find._tag !== "Filter") return yield* Effect.die("not a filter")
    const served = yield* Effect.flatMap(NightscoutReads, (reads) => reads.entries(user, find.filter, count)).pipe(
      Effect.provide(layerOver(readings, asked))
    )
    return { ...served, asked }
  })
}

describe("NightscoutReads.entries", () => {
  it.effect("reads only the last hour for the newest reading, and serves it with its delta", () =>
    Effect.gen(function* () {
      const { entries, asked } = yield* read(
        everyFiveMinutes(now - 3 * DAY, now, (at) => 100 + (at % 7)),
        "",
        1
      )
      assert.deepStrictEqual(asked, [[now - 60 * MINUTE, now + DAY]])
      assert.strictEqual(entries.length, 1)
      assert.strictEqual(entries[0]!.date, now - 5 * MINUTE)
      assert.isNumber(entries[0]!.delta)
    })
  )

  it.effect("reads further back only while too few match, and stops once enough do", () =>
    Effect.gen(function* () {
      const { entries, asked } = yield* read(everyFiveMinutes(now - 3 * DAY, now), "find[date][$gte]=0", 100)
      // 12 in the last hour, 72 in six hours, 288 in a day: the third step has enough; nothing older is read.
      assert.deepStrictEqual(
        asked.map(([from]) => (now - from) / 3_600_000),
        [1, 6, 24]
      )
      assert.strictEqual(entries.length, 100)
      assert.deepStrictEqual(
        entries.slice(0, 2).map((entry) => entry.date),
        [now - 5 * MINUTE, now - 10 * MINUTE]
      )
    })
  )

  it.effect("looks back 90 days at most, and stops after MAX_SCANNED_READINGS when nothing matches", () =>
    Effect.gen(function* () {
      const year = everyFiveMinutes(now - 365 * DAY, now)
      const { entries, asked } = yield* read(year, "find[date][$gte]=0&find[sgv][$lt]=40", 10)
      assert.deepStrictEqual(entries, [])
      const oldest = Math.min(...asked.map(([from]) => from))
      assert.isAtLeast(oldest, now - 90 * DAY)
      const scanned = year.filter((reading) => reading.timestamp >= oldest).length
      assert.isAtMost(scanned, MAX_SCANNED_READINGS + 15 * 288, "one step past the bound at most")
    })
  )
})

describe("notModified", () => {
  const lastModified = Date.UTC(2026, 10, 30, 11, 59, 30, 400)
  const httpDate = (millis: number) => new Date(millis).toUTCString()

  it.each([
    ["the same ETag", { "if-none-match": '"abc"' }, true],
    ["another ETag, whatever the date", { "if-none-match": '"xyz"', "if-modified-since": httpDate(now) }, false],
    ["the second of the last change", { "if-modified-since": httpDate(lastModified) }, true],
    ["a second before it", { "if-modified-since": httpDate(lastModified - 1_000) }, false],
    ["a date in the future (a client clock ahead)", { "if-modified-since": httpDate(now + 3_600_000) }, false],
    ["no condition", {}, false]
  ])("%s", (_, headers, expected) => {
    assert.strictEqual(notModified(headers, '"abc"', lastModified, now), expected)
  })
})
