import { deriveAlertId } from "@dexmon/domain"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Schema } from "effect"
import { TestClock } from "effect/testing"
import {
  decide,
  decodeSensorState,
  defaultAlertRules,
  encodeSensorState,
  initialSensorState,
  nextCheckAt,
  SensorState,
  trendAt
} from "../src/index.ts"
import { MINUTE, nextEventId, notified, opened, rows, runAll, script, sensor, T0, user } from "./Script.ts"

describe("episodes", () => {
  it("an hour below 70 raises one LOW, and two clear readings end it with an all clear", () => {
    const run = runAll(
      script()
        .series(T0, [65, 64, 63, 64, 65, 64, 66, 65, 64, 63, 64, 65])
        .series(T0 + 12 * 5 * MINUTE, [90, 95]).inputs
    )
    const lows = opened(run, "LOW")
    assert.strictEqual(lows.length, 1)
    assert.strictEqual(run.alerts.size, 1)
    const low = run.alerts.get(lows[0]!.alert.alert_id)!
    assert.deepStrictEqual(
      {
        status: low.status,
        started: low.started_at,
        ended: low.ended_at,
        trigger: low.glucose_value,
        extreme: low.extreme_value
      },
      { status: "RESOLVED", started: T0, ended: T0 + 13 * 5 * MINUTE, trigger: 65, extreme: 63 }
    )
    assert.deepStrictEqual(
      notified(run).map((c) => c.kind),
      ["opened", "resolved"]
    )
    assert.strictEqual(low.alert_id, deriveAlertId(sensor, T0, "LOW"))
  })

  it("one clear reading between lows does not end the episode; a dip, a recovery and a dip are two", () => {
    const oneClear = runAll(script().series(T0, [65, 75, 65, 66]).inputs)
    assert.strictEqual(opened(oneClear).length, 1)
    const twoDips = runAll(script().series(T0, [65, 60, 80, 85, 66, 62]).inputs)
    assert.deepStrictEqual(
      opened(twoDips).map((c) => [c.alert.alert_type, c.alert.started_at]),
      [
        ["LOW", T0],
        ["LOW", T0 + 20 * MINUTE]
      ]
    )
  })

  it("a first reading of 50 raises only URGENT_LOW", () => {
    const run = runAll(script().reading({ t: T0, v: 50 }).inputs)
    assert.deepStrictEqual(
      opened(run).map((c) => c.alert.alert_type),
      ["URGENT_LOW"]
    )
  })

  it("a fall from 68 to 50 raises LOW, then URGENT_LOW; the recovery sends one all clear", () => {
    const run = runAll(script().series(T0, [68, 50, 52, 80, 85]).inputs)
    assert.deepStrictEqual(
      notified(run).map((c) => `${c.kind} ${c.alert.alert_type}`),
      ["opened LOW", "opened URGENT_LOW", "resolved URGENT_LOW"]
    )
    const low = [...run.alerts.values()].find((a) => a.alert_type === "LOW")!
    assert.strictEqual(low.status, "RESOLVED")
    assert.strictEqual(low.extreme_value, 50)
    assert.strictEqual(low.ended_at, T0 + 20 * MINUTE)
  })

  it("an urgent low that clears into a low hands over to LOW: no all clear until the low clears too", () => {
    const run = runAll(script().series(T0, [68, 50, 60, 64, 66, 80, 85]).inputs)
    assert.deepStrictEqual(
      notified(run).map((c) => `${c.kind} ${c.alert.alert_type}`),
      ["opened LOW", "opened URGENT_LOW", "resolved LOW"]
    )
    const urgent = [...run.alerts.values()].find((a) => a.alert_type === "URGENT_LOW")!
    assert.deepStrictEqual([urgent.status, urgent.ended_at], ["RESOLVED", T0 + 15 * MINUTE])
  })

  it("an urgent low from the start that recovers into a low says LOW, not all clear", () => {
    const run = runAll(script().series(T0, [50, 60, 62, 64, 80, 85]).inputs)
    assert.deepStrictEqual(
      notified(run).map((c) => `${c.kind} ${c.alert.alert_type} ${c.alert.glucose_value}`),
      ["opened URGENT_LOW 50", "opened LOW 62", "resolved LOW 62"]
    )
  })

  it("a steady fall of 2 mg/dL/min from 130 raises URGENT_LOW_SOON before any reading is at or below 55; the urgent low ends it silently", () => {
    const values = [130, 120, 110, 100, 90, 80, 70, 60, 50]
    const run = runAll(script().series(T0, values).inputs)
    const soon = opened(run, "URGENT_LOW_SOON")
    assert.strictEqual(soon.length, 1)
    assert.isAbove(soon[0]!.alert.glucose_value, 55)
    const urgent = opened(run, "URGENT_LOW")[0]!
    assert.isBelow(soon[0]!.alert.started_at, urgent.alert.started_at)
    const soonEnd = run.changes.find((c) => c.alert.alert_type === "URGENT_LOW_SOON" && c.alert.ended_at !== null)!
    assert.deepStrictEqual(
      [soonEnd.kind, soonEnd.notify, soonEnd.alert.ended_at],
      ["ended", false, urgent.alert.started_at]
    )
  })

  it("HIGH above 250; rate alerts only when configured", () => {
    const rising = [120, 135, 150, 165, 180, 195]
    const off = runAll(script().series(T0, [...rising, 260, 270, 240, 230]).inputs)
    assert.deepStrictEqual(
      opened(off).map((c) => c.alert.alert_type),
      ["HIGH"]
    )
    const on = runAll(script().series(T0, rising).inputs, {
      ...defaultAlertRules,
      risingFast: { enabled: true, rate: 3 }
    })
    assert.deepStrictEqual(
      opened(on).map((c) => [c.alert.alert_type, c.alert.glucose_value]),
      [["RISING_FAST", 150]]
    )
  })
})

describe("the value that stands", () => {
  it("a MANUAL 50 where the sensor says 120 raises nothing", () => {
    const run = runAll(
      script()
        .reading({ t: T0, v: 120 })
        .reading({ t: T0, v: 50, source: "MANUAL" })
        .reading({ t: T0 + 5 * MINUTE, v: 50, source: "MANUAL" }).inputs
    )
    assert.strictEqual(run.changes.length, 0)
  })

  it("a newer SENSOR value at the same instant replaces the old one; an older event never does", () => {
    const older = nextEventId()
    const newer = nextEventId()
    const replaced = runAll(
      script()
        .reading({ t: T0, v: 65, eventId: newer })
        .reading({ t: T0, v: 120, eventId: older })
        .reading({ t: T0 + 5 * MINUTE, v: 120 }).inputs
    )
    // The older event's 120 never stood: one clear reading so far, the low goes on.
    assert.strictEqual(opened(replaced).length, 1)
    assert.strictEqual([...replaced.alerts.values()][0]!.ended_at, null)

    const corrected = runAll(
      script()
        .reading({ t: T0, v: 65 })
        .reading({ t: T0, v: 120 })
        .reading({ t: T0 + 5 * MINUTE, v: 120 }).inputs
    )
    const low = [...corrected.alerts.values()][0]!
    assert.deepStrictEqual([low.status, low.ended_at], ["RESOLVED", T0 + 5 * MINUTE])
  })

  it("a reading older than the newest never opens, splits or merges an episode", () => {
    const run = runAll(
      script()
        .series(T0, [100, 100, 100])
        .reading({ t: T0 + 2 * MINUTE, v: 50 })
        .reading({ t: T0 + 7 * MINUTE, v: 60 }).inputs
    )
    assert.strictEqual(run.changes.length, 0)
    assert.strictEqual(run.state.window.length, 5)
  })
})

describe("late data", () => {
  it("a three-day backlog posted at once notifies nothing; a live reading still low activates the open episode once", () => {
    const s = script()
    const values: Array<number> = Array.from({ length: 3 * 288 }, (_, i) =>
      i % 288 < 12 ? 60 : i % 288 < 14 ? 45 : 120
    )
    values.push(...Array.from({ length: 6 }, () => 62))
    // Posted 16 minutes after the last of them: every one is late.
    const postedAt = T0 + (values.length - 1) * 5 * MINUTE + 16 * MINUTE
    values.forEach((v, i) => {
      s.reading({ t: T0 + i * 5 * MINUTE, v, logTime: postedAt })
    })
    const backlog = runAll(s.inputs)
    assert.isAbove(opened(backlog).length, 3)
    assert.isTrue(backlog.changes.every((c) => !c.notify))
    assert.isTrue([...backlog.alerts.values()].every((a) => a.status === "BACKFILLED"))

    const liveAt = postedAt
    const live = runAll(
      script(backlog.state.position + 1)
        .reading({ t: liveAt, v: 61 })
        .reading({ t: liveAt + 5 * MINUTE, v: 60 }).inputs,
      defaultAlertRules,
      backlog.state
    )
    assert.deepStrictEqual(
      live.changes.map((c) => [c.kind, c.alert.alert_type, c.notify]),
      [
        ["activated", "LOW", true],
        ["updated", "LOW", false]
      ]
    )
  })
})

describe("no data", () => {
  const lastReading = T0 + 10 * MINUTE

  it.effect("20 silent minutes raise one NO_DATA (ticked by the clock) that ends on the next reading", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(T0)
      const readings = runAll(script().series(T0, [110, 108, 105]).inputs)
      let state = readings.state
      const changes: Array<{ kind: string; type: string; notify: boolean }> = []
      const tick = Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const decision = decide(defaultAlertRules, state, { _tag: "Tick", now })
        state = decision.state
        for (const c of decision.changes) changes.push({ kind: c.kind, type: c.alert.alert_type, notify: c.notify })
      })
      for (let minute = 1; minute <= 40; minute++) {
        yield* TestClock.adjust("1 minute")
        yield* tick
      }
      assert.deepStrictEqual(changes, [{ kind: "opened", type: "NO_DATA", notify: true }])
      const noData = state.open.find((e) => e.kind === "NO_DATA")!
      assert.strictEqual(noData.started_at, lastReading + 20 * MINUTE)
      assert.strictEqual(noData.alert_id, deriveAlertId(sensor, lastReading, "NO_DATA"))

      const now = yield* Clock.currentTimeMillis
      const back = runAll(script(state.position + 1).reading({ t: now, v: 112 }).inputs, defaultAlertRules, state)
      assert.deepStrictEqual(
        back.changes.map((c) => [c.kind, c.alert.alert_type, c.alert.status, c.alert.ended_at]),
        [["resolved", "NO_DATA", "RESOLVED", now + 3_000]]
      )
    })
  )

  it("a silence ends every open episode; after 24 hours the sensor is retired and never checked again", () => {
    const s = script()
      .series(T0, [60, 58, 59])
      .tick(lastReading + 21 * MINUTE)
    const silent = runAll(s.inputs)
    assert.deepStrictEqual(
      silent.changes.filter((c) => c.alert.alert_type === "LOW").map((c) => [c.kind, c.alert.ended_at]),
      [
        ["opened", null],
        ["updated", null],
        ["updated", null],
        ["ended", lastReading + 20 * MINUTE]
      ]
    )
    assert.strictEqual(nextCheckAt(defaultAlertRules, silent.state), lastReading + 24 * 60 * MINUTE)
    const retired = runAll([{ _tag: "Tick", now: lastReading + 25 * 60 * MINUTE }], defaultAlertRules, silent.state)
    assert.deepStrictEqual(
      retired.changes.map((c) => [c.kind, c.alert.alert_type, c.alert.ended_at]),
      [["ended", "NO_DATA", lastReading + 24 * 60 * MINUTE]]
    )
    assert.isTrue(retired.state.retired)
    assert.strictEqual(nextCheckAt(defaultAlertRules, retired.state), null)
  })

  it("a silence only the next reading reveals is recorded as a live run would have left it", () => {
    const readings = script().series(T0, [110, 108, 105])
    const back = { t: lastReading + 45 * MINUTE, v: 100 }
    const ticked = runAll(
      readings
        .tick(lastReading + 21 * MINUTE)
        .tick(lastReading + 30 * MINUTE)
        .reading(back).inputs
    )
    const unticked = runAll(script().series(T0, [110, 108, 105]).reading(back).inputs)
    assert.deepStrictEqual(rows(unticked), rows(ticked))
    assert.deepStrictEqual(
      rows(unticked).map((r) => [r.alert_type, r.status]),
      [["NO_DATA", "RESOLVED"]]
    )
  })

  it("a backlog's silence is not news: NO_DATA follows live readings only", () => {
    const run = runAll(
      script()
        .reading({ t: T0, v: 100, logTime: T0 + 60 * MINUTE })
        .tick(T0 + 90 * MINUTE).inputs
    )
    assert.strictEqual(run.changes.length, 0)
  })
})

describe("state", () => {
  it("redelivered inputs at or before the state's position change nothing", () => {
    const inputs = script().series(T0, [65, 60, 55, 80, 90]).inputs
    const first = runAll(inputs)
    const again = runAll(inputs.slice(2), defaultAlertRules, first.state)
    assert.strictEqual(again.changes.length, 0)
    assert.deepStrictEqual(again.state, first.state)
  })

  it("a tick in the log covers its position: it decides what the same tick outside the log does, once", () => {
    const readings = runAll(script().series(T0, [110, 108, 105]).inputs)
    const now = T0 + 40 * MINUTE
    const outside = decide(defaultAlertRules, readings.state, { _tag: "Tick", now })
    const position = readings.state.position + 1
    const inLog = decide(defaultAlertRules, readings.state, { _tag: "Tick", now, position })
    assert.deepStrictEqual(
      outside.changes.map((c) => [c.kind, c.alert.alert_type, c.notify]),
      [["opened", "NO_DATA", true]]
    )
    assert.deepStrictEqual(inLog.changes, outside.changes)
    assert.deepStrictEqual(inLog.state, { ...outside.state, position })
    // Redelivered (a new owner decides the partition's records again), or any tick before it: nothing.
    for (const at of [position, position - 1]) {
      const again = decide(defaultAlertRules, inLog.state, { _tag: "Tick", now: now + MINUTE, position: at })
      assert.strictEqual(again.state, inLog.state)
      assert.strictEqual(again.changes.length, 0)
    }
  })

  it("round-trips through the store's JSON and stays bounded", () => {
    const values = Array.from({ length: 400 }, (_, i) => 100 + (i % 7))
    const run = runAll(script().series(T0, values, MINUTE / 2).inputs)
    assert.isAtMost(run.state.window.length, 48)
    const decoded = Effect.runSync(decodeSensorState(encodeSensorState(run.state)))
    assert.deepStrictEqual(decoded, Schema.decodeUnknownSync(SensorState)(run.state))
    assert.deepStrictEqual(initialSensorState(sensor, user).open, [])
  })

  it("fits the least-squares slope over the last 20 minutes only", () => {
    const trend = trendAt(
      [0, 5, 10, 15, 20, 25].map((m, i) => ({ t: T0 + m * MINUTE, v: i === 0 ? 400 : 100 - 2 * m, e: nextEventId() })),
      T0 + 25 * MINUTE,
      20 * MINUTE,
      3,
      20 * MINUTE
    )!
    assert.closeTo(trend.slope, -2, 1e-9)
    assert.closeTo(trend.projected, 100 - 50 - 40, 1e-9)
  })
})
