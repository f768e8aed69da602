import { gzipSync } from "node:zlib"
import { SensorId, UserId } from "@dexmon/domain"
import { assert, describe, it } from "@effect/vitest"
import fc from "fast-check"
import { echoOf, entryIdOf, parseDateString, sensorIdOf, translateEntries } from "../src/Entries.ts"
import { decodeEntriesBody } from "../src/NightscoutBody.ts"

const alice = UserId.make("alice")
const bob = UserId.make("bob")
const isSensorId = (value: string) => /^[A-Za-z0-9._-]{1,64}$/.test(value)
const at = Date.UTC(2026, 10, 30, 9, 15, 0, 250)

describe("sensorIdOf", () => {
  it("gives two users' devices of the same name two sensors, and one device of one user one sensor", () => {
    assert.notStrictEqual(sensorIdOf(alice, "xDrip-DexcomG6"), sensorIdOf(bob, "xDrip-DexcomG6"))
    assert.strictEqual(sensorIdOf(alice, "xDrip-DexcomG6"), sensorIdOf(alice, "xDrip-DexcomG6"))
    assert.match(sensorIdOf(alice, "xDrip-DexcomG6"), /^ns-xDrip-DexcomG6-[0-9a-f]{12}$/)
    assert.match(sensorIdOf(alice, undefined), /^ns-unknown-[0-9a-f]{12}$/)
  })

  it("tells apart device names that differ only in characters a sensor id cannot hold", () => {
    assert.notStrictEqual(sensorIdOf(alice, "Loop 1"), sensorIdOf(alice, "Loop/1"))
    assert.match(sensorIdOf(alice, "loop://iPhone 15"), /^ns-loop___iPhone_15-[0-9a-f]{12}$/)
  })

  it("is a valid sensor id for any user and any device name (property)", () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9._@:|-]{1,128}$/), fc.string({ maxLength: 300 }), (user, device) => {
        const id = sensorIdOf(UserId.make(user), device)
        assert.isTrue(isSensorId(id), id)
        assert.strictEqual(SensorId.make(id), id)
      })
    )
  })
})

describe("parseDateString", () => {
  it.each([
    ["Z", "2026-11-30T09:15:00.250Z", at],
    ["+0100 (Java's Z pattern, as xDrip+ writes)", "2026-11-30T10:15:00.250+0100", at],
    ["+01:00", "2026-11-30T10:15:00.250+01:00", at],
    ["-0530", "2026-11-30T03:45:00.250-0530", at],
    ["no fraction", "2026-11-30T10:15:00+0100", at - 250],
    ["no seconds", "2026-11-30T10:15+0100", at - 250],
    ["microseconds, cut to the millisecond", "2026-11-30T09:15:00.250999Z", at],
    ["a day boundary crossed by the offset", "2026-12-01T00:15:00.250+1500", at]
  ])("reads %s", (_, text, expected) => {
    assert.strictEqual(parseDateString(text), expected)
  })

  it.each([
    ["no offset", "2026-11-30T10:15:00.250"],
    ["a day that does not exist", "2026-02-31T10:15:00Z"],
    ["hour 24", "2026-11-30T24:00:00Z"],
    ["an offset past 18 hours", "2026-11-30T10:15:00+1901"],
    ["a date alone", "2026-11-30"],
    ["epoch milliseconds as text", "1796155595000"]
  ])("refuses %s", (_, text) => {
    assert.isUndefined(parseDateString(text))
  })
})

describe("translateEntries", () => {
  const translated = (body: unknown) => {
    const result = translateEntries(alice, body)
    assert.strictEqual(result._tag, "Translated", JSON.stringify(result))
    if (result._tag !== "Translated") return { outcomes: [], echoes: [] }
    const { outcomes, posted } = result.entries
    return { outcomes, echoes: outcomes.map((outcome, index) => echoOf(posted[index]!, outcome)) }
  }
  const issuesOf = (body: unknown) => {
    const result = translateEntries(alice, body)
    assert.strictEqual(result._tag, "Invalid")
    return result._tag === "Invalid" ? result.issues : []
  }

  it("turns sgv entries into SENSOR readings and mbg into MANUAL ones, rounding a fractional date", () => {
    const { outcomes, echoes } = translated([
      { type: "sgv", sgv: 120, date: at + 0.4, device: "xDrip-DexcomG6", direction: "Flat" },
      { sgv: 39, dateString: "2026-11-30T10:20:00.000+0100", device: "xDrip-DexcomG6" },
      { type: "mbg", mbg: 98, date: at, device: "xDrip-DexcomG6" }
    ])
    const sensor = sensorIdOf(alice, "xDrip-DexcomG6")
    assert.deepStrictEqual(
      outcomes.map((outcome) =>
        outcome._tag === "Reading" ? [outcome.source, outcome.reading, outcome.timePath] : []
      ),
      [
        ["SENSOR", { sensor_id: sensor, timestamp: at, glucose_value: 120 }, "[0].date"],
        [
          "SENSOR",
          { sensor_id: sensor, timestamp: Date.UTC(2026, 10, 30, 9, 20), glucose_value: 39, sensor_limit: "LO" },
          "[1].dateString"
        ],
        ["MANUAL", { sensor_id: sensor, timestamp: at, glucose_value: 98 }, "[2].date"]
      ]
    )
    assert.strictEqual(echoes[0]?.direction, "Flat", "every posted field is echoed")
    assert.strictEqual(echoes[0]?._id, entryIdOf(sensor, at, "sgv"))
  })

  it("flags Nightscout's two sentinels as sensor limits, 39 LO and 401 HI, and no value beside them", () => {
    const { outcomes } = translated([38, 39, 40, 400, 401, 402].map((sgv, i) => ({ sgv, date: at + i * 300_000 })))
    assert.deepStrictEqual(
      outcomes.map((outcome) =>
        outcome._tag === "Reading" ? [outcome.reading.glucose_value, outcome.reading.sensor_limit ?? null] : null
      ),
      [null, [39, "LO"], [40, null], [400, null], [401, "HI"], [402, null]]
    )
  })

  it("keeps a posted _id, and makes the same _id for the same entry posted again", () => {
    const id = "8E2A4B1C-3F5D-4E6A-9B7C-0D1E2F3A4B5C"
    assert.strictEqual(translated({ sgv: 100, date: at, _id: id }).echoes[0]?._id, id)
    assert.strictEqual(
      translated({ sgv: 100, date: at }).echoes[0]?._id,
      translated([{ sgv: 101, date: at }]).echoes[0]?._id
    )
  })

  it("echoes calibrations, other types, device error codes and values no sensor or meter reads in order, not kept, each saying why", () => {
    const { outcomes, echoes } = translated([
      { type: "cal", date: at, slope: 1000, intercept: 0, scale: 1 },
      { sgv: 5, date: at },
      { type: "sensor", date: at },
      { sgv: 401, date: at },
      { sgv: 700, date: at },
      { type: "mbg", mbg: 12, date: at }
    ])
    assert.deepStrictEqual(
      outcomes.map((outcome) => (outcome._tag === "Ignored" ? outcome.kind : outcome.reading.glucose_value)),
      ["calibration", "device_error", "other_type", 401, "out_of_range", "out_of_range"]
    )
    assert.deepStrictEqual(
      echoes.map((echo) => (echo.dexmon as { stored: boolean }).stored),
      [false, false, false, true, false, false]
    )
    assert.strictEqual(echoes.length, 6, "Loop checks that every posted entry is answered")
  })

  it("names every bad entry and field, in an array and in a single entry, and translates nothing", () => {
    assert.deepStrictEqual(
      issuesOf([
        { sgv: 120, date: at },
        { sgv: "120", date: at },
        { sgv: 120 },
        { sgv: 700, date: at },
        { type: "mbg", date: at },
        { sgv: 120, dateString: "2026-11-30T10:15:00" },
        "sgv",
        { date: at }
      ]).map((issue) => issue.path),
      ["[1].sgv", "[2].date", "[4].mbg", "[5].dateString", "[6]", "[7].type"]
    )
    assert.deepStrictEqual(
      issuesOf({ sgv: 120, date: "yesterday" }).map((issue) => [issue.path, issue.message]),
      [["date", "must be a finite number"]]
    )
  })
})

describe("decodeEntriesBody", () => {
  const json = JSON.stringify([{ sgv: 120, date: at }])

  it("reads plain and gzip-encoded JSON alike", () => {
    assert.deepStrictEqual(decodeEntriesBody(new TextEncoder().encode(json), undefined, 1_000), {
      _tag: "Json",
      value: JSON.parse(json)
    })
    assert.deepStrictEqual(decodeEntriesBody(gzipSync(json), "gzip", 1_000), { _tag: "Json", value: JSON.parse(json) })
  })

  it.each([
    ["a body that decompresses past the limit", gzipSync(`[${" ".repeat(5_000)}]`), "gzip", "more than 1000 bytes"],
    ["a body that is not gzip", new TextEncoder().encode(json), "gzip", "not valid gzip"],
    ["an encoding it does not take", new TextEncoder().encode(json), "br", "br is not supported"],
    ["text that is not JSON", new TextEncoder().encode("[{"), undefined, "not valid JSON"]
  ])("refuses %s", (_, body, encoding, message) => {
    const decoded = decodeEntriesBody(body, encoding, 1_000)
    assert.strictEqual(decoded._tag, "Invalid")
    assert.include(decoded._tag === "Invalid" ? decoded.message : "", message)
  })
})
