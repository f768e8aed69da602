import { type Reading, SensorId, UserId } from "@dexmon/domain"
import { assert, describe, it } from "@effect/vitest"
import { entryIdOf, sensorIdOf } from "../src/Entries.ts"
import {
  DEFAULT_LOOKBACK_MS,
  deviceOf,
  entriesSpecFor,
  entriesSpecOf,
  entriesText,
  nightscoutEntryOf,
  parseEntriesFind
} from "../src/EntriesOut.ts"

const now = Date.UTC(2026, 10, 30, 12, 0)
const DAY = 86_400_000
const find = (query: string) => parseEntriesFind(new URLSearchParams(query), entriesSpecFor("json"), now)
const filterOf = (query: string) => {
  const parsed = find(query)
  assert.strictEqual(parsed._tag, "Filter", JSON.stringify(parsed))
  if (parsed._tag !== "Filter") throw new Error("not a filter")
  return parsed.filter
}

describe("parseEntriesFind", () => {
  it("reads the last 4 days, both types, when nothing is asked", () => {
    const filter = filterOf("count=10&token=readable-x")
    assert.deepStrictEqual([filter.from, filter.to], [now - DEFAULT_LOOKBACK_MS, now + DAY])
    assert.deepStrictEqual([...filter.types], ["sgv", "mbg"])
  })

  it.each([
    ["Nightguard's find[date][$gt] and [$lte] with .0", "find[date][$gt]=1000.0&find[date][$lte]=5000.0", [1001, 5001]],
    ["percent-encoded brackets", "find%5Bdate%5D%5B%24gte%5D=1000&find%5Bdate%5D%5B%24lt%5D=5000", [1000, 5000]],
    [
      "Loop's find[dateString] in UTC",
      "find[dateString][$gte]=1970-01-01T00:00:01Z&find[dateString][$lte]=1970-01-01T00:00:05Z",
      [1000, 5001]
    ],
    ["a day alone", "find[dateString][$gte]=1970-01-02", [DAY, now + DAY]],
    ["an exact date", "find[date]=1000", [1000, 1001]],
    ["a fractional $gt", "find[date][$gt]=1000.5", [1001, now + DAY]],
    [
      "the tighter of two lower bounds",
      "find[date][$gte]=1000&find[dateString][$gte]=1970-01-01T00:00:02.000+00:00",
      [2000, now + DAY]
    ],
    ["an upper bound alone: 4 days before it", `find[date][$lt]=${String(10 * DAY)}`, [6 * DAY, 10 * DAY]],
    ["an upper bound past tomorrow: tomorrow", `find[date][$lte]=${String(now + 30 * DAY)}`, [now - 4 * DAY, now + DAY]]
  ])("bounds the range by %s", (_, query, [from, to]) => {
    const filter = filterOf(query)
    assert.deepStrictEqual([filter.from, filter.to], [from, to])
  })

  it("filters values with find[sgv] and find[sgv][$in], and types with find[type]", () => {
    const range = filterOf("find[sgv][$gte]=70&find[sgv][$lt]=180")
    assert.deepStrictEqual([69, 70, 179, 180].map(range.matchesValue), [false, true, true, false])
    const listed = filterOf("find[sgv][$in]=39|401")
    assert.deepStrictEqual([39, 100, 401].map(listed.matchesValue), [true, false, true])
    assert.deepStrictEqual([...filterOf("find[type]=mbg").types], ["mbg"])
  })

  it("names every bad filter", () => {
    const parsed = find("find[date][$gte]=yesterday&find[device]=x&find[sgv][$gt]=high&find[date][$in]=1|2")
    assert.strictEqual(parsed._tag, "Invalid")
    assert.deepStrictEqual(parsed._tag === "Invalid" ? parsed.issues.map((issue) => issue.path) : [], [
      "find[date][$gte]",
      "find[device]",
      "find[sgv][$gt]",
      "find[date][$in]"
    ])
  })
})

describe("entriesSpecOf", () => {
  it.each([
    ["sgv.json", { types: ["sgv"], current: false, format: "json" }],
    ["current.json", { types: ["sgv"], current: true, format: "json" }],
    ["current", { types: ["sgv"], current: true, format: "json" }],
    ["mbg.csv", { types: ["mbg"], current: false, format: "csv" }],
    ["sgv.txt", { types: ["sgv"], current: false, format: "txt" }]
  ])("reads %s", (spec, expected) => {
    const read = entriesSpecOf(spec)
    assert.deepStrictEqual(read === undefined ? undefined : { ...read, types: [...read.types] }, expected)
  })

  it.each(["cal.json", "5f0c1b2a3d4e5f6a7b8c9d0e", "sgv.xml", ""])("serves no %s", (spec) => {
    assert.isUndefined(entriesSpecOf(spec))
  })
})

describe("nightscoutEntryOf", () => {
  const sensor = sensorIdOf(UserId.make("alice"), "xDrip-DexcomG6")
  const reading = (timestamp: number, value: number, source: "SENSOR" | "MANUAL" = "SENSOR"): Reading =>
    ({
      id: "1",
      sensor_id: sensor,
      user_id: UserId.make("alice"),
      timestamp,
      glucose_value: value,
      source,
      version: 1,
      etag: "e",
      created_at: timestamp,
      updated_at: timestamp
    }) as Reading

  it("serves a SENSOR reading as an sgv with DexMon's trend, its number and the delta since the previous one", () => {
    assert.deepStrictEqual(nightscoutEntryOf(reading(now, 100), { timestamp: now - 5 * 60_000, value: 110 }), {
      _id: entryIdOf(sensor, now, "sgv"),
      device: "xDrip-DexcomG6",
      date: now,
      dateString: "2026-11-30T12:00:00.000Z",
      sysTime: "2026-11-30T12:00:00.000Z",
      utcOffset: 0,
      type: "sgv",
      sgv: 100,
      direction: "SingleDown",
      trend: 6,
      delta: -10
    })
  })

  it("says NOT COMPUTABLE (8) with a null delta without a previous reading within 15 minutes", () => {
    const entry = nightscoutEntryOf(reading(now, 100), { timestamp: now - 16 * 60_000, value: 110 })
    assert.deepStrictEqual([entry.direction, entry.trend, entry.delta], ["NOT COMPUTABLE", 8, null])
  })

  it("serves a MANUAL reading as an mbg, and a sensor of DexMon's own API under its id", () => {
    const entry = nightscoutEntryOf(reading(now, 98, "MANUAL"), undefined)
    assert.deepStrictEqual([entry.type, entry.mbg, entry.sgv, entry.direction], ["mbg", 98, undefined, undefined])
    assert.strictEqual(deviceOf(SensorId.make("G7-abc")), "G7-abc")
  })

  it("writes text formats as Nightscout does: quoted strings, one entry a line", () => {
    const entries = [nightscoutEntryOf(reading(now, 100), undefined)]
    assert.strictEqual(
      entriesText(entries, "\t"),
      `"2026-11-30T12:00:00.000Z"\t${now}\t100\t"NOT COMPUTABLE"\t"xDrip-DexcomG6"\n`
    )
    assert.strictEqual(entriesText(entries, ",").split(",").length, 5)
  })
})
