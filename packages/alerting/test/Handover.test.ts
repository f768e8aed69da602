import { UserId } from "@dexmon/domain"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import {
  type ActionInput,
  type AlertRulesShape,
  decide,
  defaultAlertRules,
  type EngineInput,
  initialSensorState,
  nextCheckAt,
  type ReadingInput,
  type SensorState
} from "../src/index.ts"
import { MINUTE, nextEventId, sensor, T0 } from "./Script.ts"

/**
 * A sensor changing hands: Bob released it and Alice claimed it with her first batch. Her readings
 * must never be judged under Bob's state (his settings, his user id), and Bob's open episodes must end.
 */
const bob = UserId.make("bob")
const alice = UserId.make("alice")

/** Alice's settings: LOW below 90 (Bob keeps the deployment's 70), so which user's rules judged a reading shows. */
const aliceRules: AlertRulesShape = { ...defaultAlertRules, low: { enabled: true, below: 90 } }

const reading = (position: number, userId: UserId, t: number, v: number): ReadingInput => ({
  _tag: "Reading",
  position,
  logTime: t + 3_000,
  event: { timestamp: t, glucose_value: v, source: "SENSOR", event_id: nextEventId() },
  user_id: userId
})

const action = (position: number, userId: UserId, at: number, act: ActionInput["action"]): ActionInput => ({
  _tag: "Action",
  position,
  logTime: at,
  user_id: userId,
  action: act
})

const run = (rules: AlertRulesShape, state: SensorState, inputs: ReadonlyArray<EngineInput>) =>
  inputs.reduce(
    (acc, input) => {
      const decision = decide(rules, acc.state, input)
      return { state: decision.state, changes: [...acc.changes, ...decision.changes] }
    },
    { state, changes: [] as ReadonlyArray<ReturnType<typeof decide>["changes"][number]> }
  )

/** Bob's state with a told LOW episode open (a reading of 65 at T0). */
const bobWithLow = () => {
  const result = run(defaultAlertRules, initialSensorState(sensor, bob), [reading(0, bob, T0, 65)])
  assert.deepStrictEqual(
    result.changes.map((c) => [c.kind, c.alert.alert_type, c.alert.user_id, c.notify]),
    [["opened", "LOW", bob, true]]
  )
  return result.state
}

describe("a sensor that changes hands", () => {
  it.effect("ends the former owner's open episode and judges the new owner's reading under her own state", () =>
    Effect.sync(() => {
      const bobState = bobWithLow()
      const handover = reading(1, alice, T0 + 10 * MINUTE, 80)
      const decision = decide(aliceRules, bobState, handover)
      const [ended, opened, ...rest] = decision.changes
      assert.strictEqual(rest.length, 0)
      // Bob's LOW ends at the hand-over, his, without an all clear (it would be false), marked why.
      assert.strictEqual(ended?.kind, "ended")
      assert.strictEqual(ended?.notify, false)
      assert.strictEqual(ended?.alert.user_id, bob)
      assert.strictEqual(ended?.alert.alert_type, "LOW")
      assert.strictEqual(ended?.alert.status, "RESOLVED")
      assert.strictEqual(ended?.alert.ended_at, handover.logTime)
      assert.strictEqual(ended?.alert.silenced_by, "SENSOR_RELEASED")
      assert.strictEqual(ended?.alert.alert_id, bobState.open[0]?.alert_id)
      // 80 is LOW under Alice's settings (below 90), not under Bob's (below 70): her rules judged it, as hers.
      assert.strictEqual(opened?.kind, "opened")
      assert.strictEqual(opened?.notify, true)
      assert.strictEqual(opened?.alert.user_id, alice)
      assert.strictEqual(opened?.alert.alert_type, "LOW")
      assert.notStrictEqual(opened?.alert.alert_id, ended?.alert.alert_id)
      // Nothing of Bob's state carries over: her own trend window, no episodes of his, the log position moved on.
      const state = decision.state
      assert.strictEqual(state.user_id, alice)
      assert.strictEqual(state.position, 1)
      assert.deepStrictEqual(
        state.window.map((r) => r.t),
        [handover.event.timestamp]
      )
      assert.deepStrictEqual(
        state.open.map((e) => [e.kind, e.alert_id]),
        [["LOW", opened?.alert.alert_id]]
      )
    })
  )

  it.effect("a redelivered hand-over changes nothing, and deciding it again after a crash gives the same rows", () =>
    Effect.sync(() => {
      const bobState = bobWithLow()
      const handover = reading(1, alice, T0 + 10 * MINUTE, 80)
      const first = decide(aliceRules, bobState, handover)
      // Redelivered after the state was written: at or before its position.
      const redelivered = decide(aliceRules, first.state, handover)
      assert.strictEqual(redelivered.changes.length, 0)
      assert.strictEqual(redelivered.state, first.state)
      // A crash before the state was written: decided again from Bob's state, to the same rows and keys.
      const again = decide(aliceRules, bobState, handover)
      assert.deepStrictEqual(
        again.changes.map((c) => [c.kind, { ...c.alert }, c.decision]),
        first.changes.map((c) => [c.kind, { ...c.alert }, c.decision])
      )
      assert.deepStrictEqual(again.state, first.state)
    })
  )

  it.effect("the new owner's episodes never take the former owner's ids, even at the same instants", () =>
    Effect.sync(() => {
      const bobState = bobWithLow()
      // Alice's device posts its history again: a reading at the very instant Bob's LOW started.
      const decision = decide(aliceRules, bobState, reading(1, alice, T0, 65))
      const ids = decision.changes.map((c) => [c.kind, c.alert.user_id, c.alert.alert_id])
      assert.strictEqual(ids.length, 2)
      assert.notStrictEqual(ids[0]![2], ids[1]![2])
    })
  )

  it.effect("the owner's release ends the open episodes, marked, and the released sensor raises no NO_DATA", () =>
    Effect.sync(() => {
      const bobState = bobWithLow()
      const release = action(1, bob, T0 + 2 * MINUTE, { type: "release" })
      const decision = decide(defaultAlertRules, bobState, release)
      assert.deepStrictEqual(
        decision.changes.map((c) => [c.kind, c.alert.user_id, c.alert.status, c.alert.silenced_by, c.notify]),
        [["ended", bob, "RESOLVED", "SENSOR_RELEASED", false]]
      )
      assert.strictEqual(decision.state.open.length, 0)
      assert.strictEqual(nextCheckAt(defaultAlertRules, decision.state), null)
      // Even if the clock ticks long after: silence of a sensor given up is no news.
      const later = decide(defaultAlertRules, decision.state, { _tag: "Tick", now: T0 + 60 * MINUTE })
      assert.strictEqual(later.changes.length, 0)
      // The next owner's first reading then has nothing of Bob's to end.
      const next = decide(aliceRules, decision.state, reading(2, alice, T0 + 30 * MINUTE, 80))
      assert.deepStrictEqual(
        next.changes.map((c) => [c.kind, c.alert.user_id, c.alert.alert_type]),
        [["opened", alice, "LOW"]]
      )
    })
  )

  it.effect("a former owner's action appended after the hand-over touches nothing of the new owner's", () =>
    Effect.sync(() => {
      const bobState = bobWithLow()
      const aliceState = decide(aliceRules, bobState, reading(1, alice, T0 + 10 * MINUTE, 80)).state
      const aliceLow = aliceState.open[0]!
      for (const act of [
        { type: "release" },
        { type: "stop" },
        { type: "acknowledge", alert_id: aliceLow.alert_id, by: bob },
        { type: "snooze", alert_id: aliceLow.alert_id, kind: "LOW", until: T0 + 60 * MINUTE }
      ] as const) {
        const decision = decide(aliceRules, aliceState, action(2, bob, T0 + 11 * MINUTE, act))
        assert.strictEqual(decision.changes.length, 0, act.type)
        assert.deepStrictEqual(decision.state.open, aliceState.open, act.type)
        assert.deepStrictEqual(decision.state.snoozes, aliceState.snoozes, act.type)
        assert.strictEqual(decision.state.stopped, false, act.type)
        assert.strictEqual(decision.state.user_id, alice, act.type)
      }
    })
  )
})
