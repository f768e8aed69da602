import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import {
  AlertActionEvent,
  AlertClockEvent,
  AlertId,
  decodeEventsTopicBytes,
  EventId,
  encodeAlertActionEvent,
  encodeAlertClockEvent,
  encodeGlucoseEvent,
  GlucoseEvent,
  SensorId,
  UserId
} from "../src/index.ts"

const encoder = new TextEncoder()
const t0 = Date.parse("2026-11-24T08:00:00.000Z")
const base = {
  sensor_id: SensorId.make("cgm-1"),
  user_id: UserId.make("user-1")
}
const action = (request: AlertActionEvent["action"]) =>
  new AlertActionEvent({
    schema: "alert-action",
    schema_version: 1,
    action_id: EventId.make("01900000-0000-7000-8000-000000000001"),
    ...base,
    action: request,
    requested_at: t0
  })
const alertId = AlertId.make("6b60962c-1728-8e6e-b5a9-4cb223fad882")

describe("the messages of glucose.events", () => {
  it.effect.each([
    { name: "acknowledge", event: action({ type: "acknowledge", alert_id: alertId }) },
    { name: "snooze", event: action({ type: "snooze", alert_id: alertId, kind: "LOW", until: t0 + 3_600_000 }) },
    { name: "stop", event: action({ type: "stop" }) }
  ])("an action ($name) decodes as an action, never as a reading", ({ event }) =>
    Effect.gen(function* () {
      const decoded = yield* decodeEventsTopicBytes(encoder.encode(encodeAlertActionEvent(event)))
      assert.instanceOf(decoded, AlertActionEvent)
      assert.deepStrictEqual(decoded, event)
    })
  )

  it.effect("the notifier's clock tick decodes as a tick, never as a reading or an action", () =>
    Effect.gen(function* () {
      const event = new AlertClockEvent({
        schema: "alert-clock",
        schema_version: 1,
        sensor_id: base.sensor_id,
        tick_at: t0
      })
      const decoded = yield* decodeEventsTopicBytes(encoder.encode(encodeAlertClockEvent(event)))
      assert.instanceOf(decoded, AlertClockEvent)
      assert.deepStrictEqual(decoded, event)
    })
  )

  it.effect("a reading's event decodes as a reading", () =>
    Effect.gen(function* () {
      const event = new GlucoseEvent({
        schema_version: 1,
        event_id: EventId.make("01900000-0000-7000-8000-000000000002"),
        ...base,
        timestamp: t0,
        glucose_value: 100,
        source: "SENSOR",
        received_at: t0
      })
      const decoded = yield* decodeEventsTopicBytes(encoder.encode(encodeGlucoseEvent(event)))
      assert.instanceOf(decoded, GlucoseEvent)
    })
  )

  it.effect.each([
    { name: "bytes that are not UTF-8", bytes: Uint8Array.from([0xff, 0x7b]) },
    {
      name: "an unknown action",
      bytes: encoder.encode(
        JSON.stringify({ ...JSON.parse(encodeAlertActionEvent(action({ type: "stop" }))), action: { type: "mute" } })
      )
    },
    { name: "a future version", bytes: encoder.encode(JSON.stringify({ schema_version: 2 })) }
  ])("$name fails to decode (it goes to the DLQ)", ({ bytes }) =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(decodeEventsTopicBytes(bytes))
      assert.strictEqual(error._tag, "SchemaError")
    })
  )
})
