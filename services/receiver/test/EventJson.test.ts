import {
  EventId,
  encodeGlucoseEvent,
  GlucoseEvent,
  SensorId,
  type SensorLimit,
  type Source,
  UserId
} from "@dexmon/domain"
import { assert, describe, it } from "@effect/vitest"
import { glucoseEventJson } from "../src/EventJson.ts"

const fields = {
  schema_version: 1 as const,
  event_id: EventId.make("0193a3a0-0000-7000-8000-000000000001"),
  sensor_id: SensorId.make("G7-sensor_1.a"),
  user_id: UserId.make("user-1"),
  timestamp: Date.UTC(2026, 10, 24, 8, 15, 0, 7),
  glucose_value: 54.5,
  source: "SENSOR" as Source,
  received_at: Date.UTC(2026, 10, 24, 8, 15, 1, 0),
  settings_version: 3,
  sensor_limit: "LO" as SensorLimit
}
const event = (changes: Partial<typeof fields> = {}) => new GlucoseEvent({ ...fields, ...changes })
const { settings_version: _, sensor_limit: __, ...withoutVersion } = fields

describe("glucoseEventJson", () => {
  it.each([
    ["with a settings version", event()],
    ["with settings version 0", event({ settings_version: 0 })],
    ["without a settings version", new GlucoseEvent(withoutVersion)],
    ["a manual reading in the year 1970", event({ source: "MANUAL", timestamp: 0, received_at: 999 })],
    ["at the sensor's upper limit", event({ glucose_value: 401, sensor_limit: "HI" })]
  ])("writes the same text as the Schema encoder: %s", (_, sample) => {
    assert.strictEqual(glucoseEventJson(sample), encodeGlucoseEvent(sample))
  })

  it("writes every field GlucoseEvent has: a field added to the event fails here until it is written", () => {
    assert.deepStrictEqual(Object.keys(JSON.parse(glucoseEventJson(event()))), Object.keys(GlucoseEvent.fields))
  })
})
