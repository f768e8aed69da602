import { assert, describe, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { TestClock } from "effect/testing"
import { deriveAlertId, EventIds, GlucoseEvent, GlucoseEventJson, IsoTimestamp } from "../src/index.ts"

describe("event ids", () => {
  it.effect("are UUIDv7 and strictly increasing within one millisecond and when the clock steps back", () =>
    Effect.gen(function* () {
      const ids = yield* EventIds
      yield* TestClock.setTime(1_800_000_000_000)
      const first = yield* Effect.all(Array.from({ length: 1000 }, () => ids.next))
      yield* TestClock.setTime(1_700_000_000_000)
      const afterStepBack = yield* ids.next
      const all = [...first, afterStepBack]
      for (let i = 1; i < all.length; i++) assert.isTrue(all[i - 1]! < all[i]!, `${all[i - 1]} < ${all[i]}`)
      assert.match(first[0]!, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
      assert.isTrue(first[0]!.startsWith((1_800_000_000_000).toString(16).padStart(12, "0").slice(0, 8)))
    }).pipe(Effect.provide(EventIds.layer))
  )
})

describe("alert ids", () => {
  it("derive from sensor, timestamp and type only", () => {
    const id = deriveAlertId("s1", 1_000, "LOW")
    assert.strictEqual(deriveAlertId("s1", 1_000, "LOW"), id)
    assert.notStrictEqual(deriveAlertId("s1", 1_000, "HIGH"), id)
    assert.notStrictEqual(deriveAlertId("s1", 1_001, "LOW"), id)
    assert.notStrictEqual(deriveAlertId("s2", 1_000, "LOW"), id)
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
  })
})

describe("timestamps", () => {
  const decode = Schema.decodeUnknownExit(IsoTimestamp)
  it("accept ISO-8601 UTC with up to millisecond precision", () => {
    assert.deepStrictEqual(decode("2026-11-24T08:15:00.123Z")._tag, "Success")
    assert.deepStrictEqual(decode("2026-11-24T08:15:00+00:00")._tag, "Success")
  })
  it("refuse other zones, dates that do not exist and other shapes", () => {
    for (const bad of [
      "2026-11-24T08:15:00+01:00",
      "2026-02-30T00:00:00Z",
      "2026-11-24 08:15:00Z",
      "1732435200",
      17,
      null
    ]) {
      assert.strictEqual(decode(bad)._tag, "Failure", String(bad))
    }
  })
})

describe("glucose events", () => {
  it("round-trip through their JSON form with snake_case fields and a schema version", () => {
    const event = new GlucoseEvent({
      schema_version: 1,
      event_id: "019ab1c2-0000-7000-8000-000000000001" as GlucoseEvent["event_id"],
      sensor_id: "s1" as GlucoseEvent["sensor_id"],
      user_id: "u1" as GlucoseEvent["user_id"],
      timestamp: Date.parse("2026-11-24T08:15:00.000Z"),
      glucose_value: 65,
      source: "SENSOR",
      received_at: Date.parse("2026-11-24T08:15:01.000Z")
    })
    const json = Schema.encodeSync(GlucoseEventJson)(event)
    assert.deepStrictEqual(JSON.parse(json), {
      schema_version: 1,
      event_id: "019ab1c2-0000-7000-8000-000000000001",
      sensor_id: "s1",
      user_id: "u1",
      timestamp: "2026-11-24T08:15:00.000Z",
      glucose_value: 65,
      source: "SENSOR",
      received_at: "2026-11-24T08:15:01.000Z"
    })
    assert.deepStrictEqual(Schema.decodeUnknownSync(GlucoseEventJson)(json), event)
  })
})
