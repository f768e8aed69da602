import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, Clock, Effect, Schema } from "effect"
import { TestClock } from "effect/testing"
import {
  type AlertChange,
  decide,
  defaultAlertRules,
  type EngineInput,
  initialSensorState,
  nextCheckAt
} from "../src/index.ts"
import { MINUTE, runAll, script, sensor, T0, tickEvery, timeline, user } from "./Script.ts"

/** Minutes after T0 at which the episode of `kind` notified (first, repeats, reminders, all clear). */
const notifiedAt = (changes: ReadonlyArray<AlertChange>, kind: string, times: ReadonlyArray<number>) =>
  changes.flatMap((c, i) =>
    c.notify && c.alert.alert_type === kind ? [{ minute: (times[i]! - T0) / MINUTE, what: c.kind, n: c.sequence }] : []
  )

/** Runs a timeline and remembers at what time each change was decided. */
const runTimeline = (inputs: ReadonlyArray<EngineInput>) => {
  let state = initialSensorState(sensor, user)
  const changes: Array<AlertChange> = []
  const times: Array<number> = []
  for (const input of inputs) {
    const decision = decide(defaultAlertRules, state, input)
    state = decision.state
    for (const change of decision.changes) {
      changes.push(change)
      times.push(input._tag === "Tick" ? input.now : input.logTime)
    }
  }
  return { state, changes, times }
}

const acknowledge = (alertId: string, at: number): EngineInput => ({
  _tag: "Action",
  position: 0,
  logTime: at,
  action: { type: "acknowledge", alert_id: alertId }
})

// Readings every 5 minutes; a sensor with 1-minute readings for the minutes given.
const urgentLowFor = (minutes: number, every = 5) =>
  script().series(
    T0,
    Array.from({ length: Math.floor(minutes / every) + 1 }, () => 50),
    every * MINUTE
  ).inputs

describe("repeats, acknowledgement, snooze and sensor stop", () => {
  it("an unacknowledged URGENT_LOW of 22 minutes with fresh readings notifies at 0, 5, 10, 15 and 20 minutes, then the all clear", () => {
    const readings = script()
      .series(T0, [50, 50, 50, 50, 50])
      .reading({ t: T0 + 21 * MINUTE, v: 70 })
      .reading({ t: T0 + 22 * MINUTE, v: 75 }).inputs
    const run = runTimeline(timeline(readings, tickEvery(T0 + MINUTE, T0 + 40 * MINUTE)))
    assert.deepStrictEqual(
      notifiedAt(run.changes, "URGENT_LOW", run.times).map((n) => [Math.round(n.minute), n.what, n.n]),
      [
        [0, "opened", 1],
        [5, "repeated", 2],
        [10, "repeated", 3],
        [15, "repeated", 4],
        [20, "repeated", 5],
        [22, "resolved", 6]
      ]
    )
  })

  it("acknowledged at minute 7: notifies at 0 and 5, then again at 37 while still at or below 55, and the repeats go on", () => {
    const readings = urgentLowFor(45)
    const opened = runAll(readings.slice(0, 1)).changes[0]!.alert.alert_id
    const run = runTimeline(
      timeline(readings, [acknowledge(opened, T0 + 7 * MINUTE)], tickEvery(T0 + MINUTE, T0 + 45 * MINUTE))
    )
    assert.deepStrictEqual(
      notifiedAt(run.changes, "URGENT_LOW", run.times).map((n) => Math.round(n.minute)),
      [0, 5, 37, 40, 45]
    )
    assert.isTrue(run.changes.some((c) => c.kind === "acknowledged"))
  })

  it("an acknowledged LOW repeats no more; an acknowledged URGENT_LOW that recovered gets no reminder", () => {
    const rules = { ...defaultAlertRules, repeat: { LOW: 5 * MINUTE, URGENT_LOW: 5 * MINUTE } }
    const readings = script().series(
      T0,
      Array.from({ length: 12 }, () => 65)
    ).inputs
    const first = decide(rules, initialSensorState(sensor, user), readings[0]!).changes[0]!.alert.alert_id
    let state = initialSensorState(sensor, user)
    const told: Array<string> = []
    for (const input of timeline(readings, [acknowledge(first, T0 + 2 * MINUTE)], tickEvery(T0, T0 + 55 * MINUTE))) {
      const decision = decide(rules, state, input)
      state = decision.state
      for (const c of decision.changes) if (c.notify) told.push(`${c.kind} ${c.alert.alert_type}`)
    }
    assert.deepStrictEqual(told, ["opened LOW"])
  })

  it("a 60-minute LOW snooze leaves a second LOW episode inside it silent and the one after it notified; URGENT_LOW is never snoozed away", () => {
    const s = script()
      .series(T0, [65, 66, 90, 95]) // LOW at 0, over at 15
      .series(T0 + 30 * MINUTE, [64, 65, 90, 92]) // a second LOW at 30, inside the snooze
      .series(T0 + 70 * MINUTE, [63, 64]) // a third LOW at 70, after it
      .series(T0 + 80 * MINUTE, [90, 95, 50]) // an urgent low at 90, snoozed or not
    const snooze: EngineInput = {
      _tag: "Action",
      position: 0,
      logTime: T0 + 5 * MINUTE,
      action: { type: "snooze", kind: "LOW", until: T0 + 65 * MINUTE }
    }
    const urgentSnooze: EngineInput = {
      _tag: "Action",
      position: 0,
      logTime: T0 + 85 * MINUTE,
      action: { type: "snooze", kind: "URGENT_LOW", until: T0 + 115 * MINUTE }
    }
    const run = runTimeline(timeline(s.inputs, [snooze, urgentSnooze]))
    const lows = run.changes.filter((c) => c.kind === "opened" && c.alert.alert_type === "LOW")
    assert.deepStrictEqual(
      lows.map((c) => [(c.alert.started_at - T0) / MINUTE, c.notify]),
      [
        [0, true],
        [30, false],
        [70, true]
      ]
    )
    // The silent episode sends no all clear either: nobody was told it began.
    const secondEnd = run.changes.find((c) => c.alert.started_at === T0 + 30 * MINUTE && c.alert.ended_at !== null)!
    assert.deepStrictEqual([secondEnd.kind, secondEnd.notify], ["ended", false])
    const urgent = run.changes.find((c) => c.kind === "opened" && c.alert.alert_type === "URGENT_LOW")!
    assert.isTrue(urgent.notify)
  })

  it("a snooze on URGENT_LOW only delays its repeats", () => {
    const readings = urgentLowFor(30)
    const snooze: EngineInput = {
      _tag: "Action",
      position: 0,
      logTime: T0 + 2 * MINUTE,
      action: { type: "snooze", kind: "URGENT_LOW", until: T0 + 17 * MINUTE }
    }
    const run = runTimeline(timeline(readings, [snooze], tickEvery(T0 + MINUTE, T0 + 30 * MINUTE)))
    assert.deepStrictEqual(
      notifiedAt(run.changes, "URGENT_LOW", run.times).map((n) => Math.round(n.minute)),
      [0, 20, 25, 30]
    )
  })

  it.effect(
    "a stopped sensor's open episodes end silently and its silence raises no NO_DATA until it posts again",
    () =>
      Effect.gen(function* () {
        yield* TestClock.setTime(T0)
        const before = runAll(script().series(T0, [65, 64]).inputs)
        const stop: EngineInput = { _tag: "Action", position: 2, logTime: T0 + 6 * MINUTE, action: { type: "stop" } }
        let state = decide(defaultAlertRules, before.state, stop).state
        assert.deepStrictEqual(state.open, [])
        assert.strictEqual(nextCheckAt(defaultAlertRules, state), null)
        const told: Array<string> = []
        for (let minute = 0; minute < 90; minute++) {
          yield* TestClock.adjust("1 minute")
          const decision = decide(defaultAlertRules, state, { _tag: "Tick", now: yield* Clock.currentTimeMillis })
          state = decision.state
          told.push(...decision.changes.map((c) => c.alert.alert_type))
        }
        assert.deepStrictEqual(told, [])
        // The new sensor's first reading starts watching again.
        const now = yield* Clock.currentTimeMillis
        const again = runAll(script(3).reading({ t: now, v: 120 }).inputs, defaultAlertRules, state)
        assert.deepStrictEqual(again.changes, [])
        assert.strictEqual(nextCheckAt(defaultAlertRules, again.state), now + 20 * MINUTE + 1)
      })
  )

  const int = (minimum: number, maximum: number) => Schema.Int.check(Schema.isBetween({ minimum, maximum }))
  it.prop(
    "repeats stop when readings stop: nothing repeats once the newest reading is more than 10 minutes old",
    [int(1, 12), int(0, 4)],
    ([readingCount, extraGapMinutes]) => {
      const readings = script().series(
        T0,
        Array.from({ length: readingCount }, () => 50)
      ).inputs
      const lastReading = T0 + (readingCount - 1) * 5 * MINUTE
      const run = runTimeline(timeline(readings, tickEvery(T0 + MINUTE, lastReading + (30 + extraGapMinutes) * MINUTE)))
      const repeats = run.changes.flatMap((c, i) => (c.kind === "repeated" ? [run.times[i]!] : []))
      assert.isTrue(repeats.every((at) => at <= lastReading + 10 * MINUTE))
      assert.isAtLeast(repeats.length, Math.floor(((readingCount - 1) * 5 + 10) / 5) - 1)
    }
  )

  it.prop(
    "a redelivered action changes nothing; actions never change which episodes exist",
    [Arbitrary.array(Arbitrary.schema(int(0, 60)), { maxLength: 6 })],
    ([ackMinutes]) => {
      const readings = urgentLowFor(60)
      const id = runAll(readings.slice(0, 1)).changes[0]!.alert.alert_id
      const acks = ackMinutes.map((m) => acknowledge(id, T0 + m * MINUTE + 30_000))
      const withAcks = runTimeline(timeline(readings, acks))
      const without = runTimeline(timeline(readings))
      const ids = (r: typeof withAcks) => [...new Set(r.changes.map((c) => c.alert.alert_id))]
      assert.deepStrictEqual(ids(withAcks), ids(without))
      const last = timeline(readings, acks).at(-1)!
      assert.deepStrictEqual(decide(defaultAlertRules, withAcks.state, last), { state: withAcks.state, changes: [] })
    }
  )
})
