import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, Clock, Effect, Schema } from "effect"
import { TestClock } from "effect/testing"
import {
  type ActionInput,
  type AlertChange,
  type AlertRulesShape,
  decide,
  defaultAlertRules,
  type EngineInput,
  initialSensorState,
  nextCheckAt,
  type QuietHours,
  type SensorState
} from "../src/index.ts"
import { MINUTE, nextEventId, runAll, script, sensor, T0, tickEvery, timeline, user } from "./Script.ts"

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
  action: { type: "acknowledge", alert_id: alertId, by: user }
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
      action: { type: "snooze", alert_id: "snoozed-from-app", kind: "LOW", until: T0 + 65 * MINUTE }
    }
    const urgentSnooze: EngineInput = {
      _tag: "Action",
      position: 0,
      logTime: T0 + 85 * MINUTE,
      action: { type: "snooze", alert_id: "snoozed-from-app", kind: "URGENT_LOW", until: T0 + 115 * MINUTE }
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
      action: { type: "snooze", alert_id: "snoozed-from-app", kind: "URGENT_LOW", until: T0 + 17 * MINUTE }
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

/** Ticks every minute on the TestClock from `from` to `to`, with a live reading of `valueAt(minute)` every 5 minutes. */
const liveDay = (rules: AlertRulesShape, from: number, to: number, valueAt: (at: number) => number) =>
  Effect.gen(function* () {
    yield* TestClock.setTime(from)
    let state = initialSensorState(sensor, user)
    let position = 0
    const told: Array<{ at: number; kind: AlertChange["kind"]; type: string; silencedBy: string | null }> = []
    const rows = new Map<string, AlertChange["alert"]>()
    const checks: Array<{ at: number; next: number | null }> = []
    const apply = (input: EngineInput, at: number) => {
      const decision = decide(rules, state, input)
      state = decision.state
      for (const c of decision.changes) {
        rows.set(c.alert.alert_id, c.alert)
        if (c.notify) told.push({ at, kind: c.kind, type: c.alert.alert_type, silencedBy: c.alert.silenced_by })
      }
    }
    for (let now = yield* Clock.currentTimeMillis; now <= to; now = yield* Clock.currentTimeMillis) {
      if ((now - from) % (5 * MINUTE) === 0) {
        apply(
          {
            _tag: "Reading",
            position: position++,
            logTime: now,
            event: { timestamp: now, glucose_value: valueAt(now), source: "SENSOR", event_id: nextEventId() }
          },
          now
        )
      }
      apply({ _tag: "Tick", now }, now)
      checks.push({ at: now, next: nextCheckAt(rules, state) })
      yield* TestClock.adjust("1 minute")
    }
    return { told, rows, checks, state }
  })

describe("quiet hours", () => {
  const berlinNights: QuietHours = {
    start: "22:00",
    end: "07:00",
    time_zone: "Europe/Berlin",
    days: [1, 2, 3, 4, 5, 6, 7]
  }
  const rules: AlertRulesShape = { ...defaultAlertRules, quietHours: berlinNights }

  it.effect.each([
    // Clocks go back at 03:00 CEST: the night is an hour longer, and 07:00 CET is 06:00 UTC.
    { name: "the night the clocks go back", evening: "2026-10-24T19:00:00Z", quietEnd: "2026-10-25T06:00:00Z" },
    // Clocks go forward at 02:00 CET: the night is an hour shorter, and 07:00 CEST is 05:00 UTC.
    { name: "the night the clocks go forward", evening: "2026-03-28T19:00:00Z", quietEnd: "2026-03-29T05:00:00Z" }
  ])(
    "silence HIGH but not URGENT_LOW, and a HIGH still open at their end notifies then: $name",
    ({ evening, quietEnd }) =>
      Effect.gen(function* () {
        const from = Date.parse(evening)
        const end = Date.parse(quietEnd)
        const highFrom = from + 3 * 60 * MINUTE // 23:00 local, inside quiet hours
        const urgentFrom = from + 5 * 60 * MINUTE // an urgent low at 01:00 local, for 20 minutes
        const run = yield* liveDay(rules, from, end + 30 * MINUTE, (at) =>
          at >= urgentFrom && at < urgentFrom + 20 * MINUTE ? 50 : at >= highFrom ? 300 : 120
        )
        // The HIGH of 23:00 is recorded silently, then the urgent low interrupts it; a second HIGH follows.
        const highs = run.told.filter((t) => t.type === "HIGH")
        assert.deepStrictEqual(
          highs.map((t) => [t.at, t.kind]),
          [[end, "released"]]
        )
        const urgent = run.told.filter((t) => t.type === "URGENT_LOW")
        assert.deepStrictEqual(urgent[0]!.at, urgentFrom)
        assert.isTrue(urgent.length >= 4)
        assert.isTrue(urgent.every((t) => t.at < end))
        // While the HIGH was held its next check was the end of quiet hours (or an earlier silence check).
        const held = run.checks.filter((c) => c.at > urgentFrom + 40 * MINUTE && c.at < end)
        assert.isTrue(held.length > 0)
        assert.isTrue(held.every((c) => c.next !== null && c.next <= end))
        assert.isTrue(held.some((c) => c.next === end))
        const openHigh = [...run.rows.values()].find((a) => a.alert_type === "HIGH" && a.ended_at === null)!
        assert.deepStrictEqual(
          [openHigh.notification_count, openHigh.last_notified_at, openHigh.silenced_by],
          [1, end, null]
        )
      })
  )

  it("a HIGH that ends inside quiet hours shows QUIET_HOURS, was never told and sends no all clear", () => {
    const night = Date.parse("2026-11-20T23:00:00Z") // midnight in Berlin
    const run = runAll(script().series(night, [300, 310, 300, 200, 190]).inputs, rules)
    assert.deepStrictEqual(
      run.changes.filter((c) => c.notify),
      []
    )
    const high = [...run.alerts.values()][0]!
    assert.deepStrictEqual(
      [high.alert_type, high.status, high.notification_count, high.silenced_by],
      ["HIGH", "RESOLVED", 0, "QUIET_HOURS"]
    )
  })
})

describe("what was notified is visible on the alert", () => {
  it("notification_count and last_notified_at count the first, each repeat and the all clear", () => {
    const readings = script()
      .series(T0, [50, 50, 50])
      .series(T0 + 15 * MINUTE, [70, 75]).inputs
    const run = runTimeline(timeline(readings, tickEvery(T0 + MINUTE, T0 + 20 * MINUTE)))
    const last = run.changes.at(-1)!
    assert.deepStrictEqual(
      [last.kind, last.alert.notification_count, last.alert.last_notified_at, last.alert.silenced_by],
      // Told at 0, 5, 10 and 15 minutes (the repeat at 15 comes before that minute's clear reading), then all clear.
      ["resolved", 5, T0 + 20 * MINUTE + 3_000, null]
    )
  })

  it("an acknowledged episode shows when and by whom, and ACKNOWLEDGED once a repeat is held back", () => {
    const readings = urgentLowFor(12)
    const id = runAll(readings.slice(0, 1)).changes[0]!.alert.alert_id
    const run = runTimeline(
      timeline(readings, [acknowledge(id, T0 + 2 * MINUTE)], tickEvery(T0 + MINUTE, T0 + 12 * MINUTE))
    )
    const last = run.changes.filter((c) => c.alert.alert_id === id).at(-1)!.alert
    assert.deepStrictEqual(
      [last.acknowledged_at, last.acknowledged_by, last.notification_count, last.silenced_by],
      [T0 + 2 * MINUTE, user, 1, "ACKNOWLEDGED"]
    )
  })

  it("a snoozed kind's episode shows until when and SNOOZED; it is told when the snooze runs out while it is still open", () => {
    const readings = script().series(
      T0,
      Array.from({ length: 11 }, () => 65)
    ).inputs
    const snooze: EngineInput = {
      _tag: "Action",
      position: 0,
      logTime: T0 - MINUTE,
      action: { type: "snooze", alert_id: "earlier-low", kind: "LOW", until: T0 + 30 * MINUTE }
    }
    const run = runTimeline(timeline([snooze], readings, tickEvery(T0, T0 + 50 * MINUTE)))
    const first = run.changes.find((c) => c.kind === "opened")!.alert
    assert.deepStrictEqual(
      [first.snoozed_until, first.silenced_by, first.notification_count],
      [T0 + 30 * MINUTE, "SNOOZED", 0]
    )
    assert.deepStrictEqual(
      notifiedAt(run.changes, "LOW", run.times).map((n) => [n.minute, n.what]),
      [[30, "released"]]
    )
  })

  it("a late episode shows BACKFILLED", () => {
    const run = runAll(script().reading({ t: T0, v: 60, logTime: T0 + 60 * MINUTE }).inputs)
    assert.deepStrictEqual(run.changes[0]!.alert.silenced_by, "BACKFILLED")
  })
})

describe("the owner's settings version", () => {
  it("the state keeps the newest version a reading carried; the clock and actions are decided with it", () => {
    const withVersion = (version: number, t: number): EngineInput =>
      ({
        ...script().reading({ t, v: 120 }).inputs[0]!,
        settingsVersion: version
      }) as EngineInput
    const run = runAll(
      timeline([withVersion(2, T0), withVersion(3, T0 + 5 * MINUTE), withVersion(1, T0 + 10 * MINUTE)])
    )
    assert.strictEqual(run.state.settings_version, 3)
  })
})

/**
 * Runs readings and the owner's actions the way the notifier does: the clock
 * fiber comes every minute, and with `onlyWhenDue` a sensor is ticked only when
 * its `nextCheckAt` has passed (the check-time index of the state store).
 * Actions are made from the state at their time (`act` sees the open episodes).
 */
const simulate = (
  rules: AlertRulesShape,
  readings: ReadonlyArray<{ readonly t: number; readonly v: number; readonly logTime: number }>,
  actions: ReadonlyArray<{
    readonly at: number
    readonly act: (state: SensorState) => ActionInput["action"] | undefined
  }>,
  until: number,
  onlyWhenDue: boolean
) => {
  let state = initialSensorState(sensor, user)
  let position = 0
  const told: Array<string> = []
  let ticks = 0
  const apply = (input: EngineInput, at: number) => {
    const decision = decide(rules, state, input)
    state = decision.state
    for (const c of decision.changes)
      if (c.notify) told.push(`${(at - T0) / 1000}s ${c.alert.alert_type} ${c.decision}`)
  }
  const events = [
    ...readings.map((r) => ({ at: r.logTime, run: () => apply(readingAt(r, position++), r.logTime) })),
    ...actions.map(({ at, act }) => ({
      at,
      run: () => {
        const action = act(state)
        if (action !== undefined) apply({ _tag: "Action", position: position++, logTime: at, action }, at)
      }
    }))
  ].sort((a, b) => a.at - b.at)
  let next = 0
  for (let now = T0; now <= until; now += MINUTE) {
    while (next < events.length && events[next]!.at <= now) events[next++]!.run()
    const check = nextCheckAt(rules, state)
    if (!onlyWhenDue || (check !== null && check <= now)) {
      ticks += 1
      apply({ _tag: "Tick", now }, now)
    }
  }
  return { told, ticks, state }
}

const readingAt = (
  r: { readonly t: number; readonly v: number; readonly logTime: number },
  position: number
): EngineInput => ({
  _tag: "Reading",
  position,
  logTime: r.logTime,
  event: { timestamp: r.t, glucose_value: r.v, source: "SENSOR", event_id: nextEventId() }
})

const everyFive = (values: ReadonlyArray<number>, lateBy = 3_000) =>
  values.map((v, i) => ({ t: T0 + i * 5 * MINUTE, v, logTime: T0 + i * 5 * MINUTE + lateBy }))

/** `HH:MM` of minutes after midnight. */
const clockTime = (minutes: number) =>
  `${String(Math.floor(minutes / 60) % 24).padStart(2, "0")}:${String(minutes % 60).padStart(2, "0")}`

const urgentFirst = (state: SensorState) =>
  [...state.open].sort((a, b) => (a.kind === "URGENT_LOW" ? -1 : b.kind === "URGENT_LOW" ? 1 : 0))[0]

describe("the clock as the notifier runs it", () => {
  const int = (minimum: number, maximum: number) => Schema.Int.check(Schema.isBetween({ minimum, maximum }))
  it.prop(
    "ticking a sensor only when nextCheckAt says so tells exactly what ticking it every minute tells",
    [
      Schema.Array(int(40, 320)).check(Schema.isMinLength(4), Schema.isMaxLength(30)),
      int(-1, 29),
      int(0, 150),
      int(0, 150),
      int(0, 6),
      int(0, 23),
      int(0, 15)
    ],
    ([values, gapAfter, ackMinute, snoozeMinute, snoozeKind, quietStart, repeatChoice]) => {
      const kinds = ["URGENT_LOW", "LOW", "HIGH", "URGENT_LOW_SOON", "FALLING_FAST", "RISING_FAST", "NO_DATA"] as const
      const rules: AlertRulesShape = {
        ...defaultAlertRules,
        fallingFast: { enabled: true, rate: 3 },
        risingFast: { enabled: true, rate: 3 },
        repeat: {
          ...(repeatChoice & 1 ? { URGENT_LOW: 5 * MINUTE } : {}),
          ...(repeatChoice & 2 ? { LOW: 15 * MINUTE } : {}),
          ...(repeatChoice & 4 ? { HIGH: 30 * MINUTE } : {}),
          ...(repeatChoice & 8 ? { NO_DATA: 10 * MINUTE } : {})
        },
        // T0 is 07:00 in Berlin: quiet hours of 90 minutes starting within the scenario's first four hours, or none.
        quietHours:
          quietStart % 4 === 0
            ? null
            : {
                start: clockTime(7 * 60 + (quietStart % 8) * 30),
                end: clockTime(7 * 60 + (quietStart % 8) * 30 + 90),
                time_zone: "Europe/Berlin",
                days: [1, 2, 3, 4, 5, 6, 7]
              }
      }
      // Readings every 5 minutes, with a 40-minute silence after one of them (or none).
      const readings = everyFive(values).map((r, i) =>
        gapAfter >= 0 && i > gapAfter ? { ...r, t: r.t + 40 * MINUTE, logTime: r.logTime + 40 * MINUTE } : r
      )
      const actions = [
        {
          at: T0 + ackMinute * MINUTE + 30_000,
          act: (state: SensorState) => {
            const episode = urgentFirst(state)
            return episode === undefined
              ? undefined
              : { type: "acknowledge" as const, alert_id: episode.alert_id, by: user }
          }
        },
        {
          at: T0 + snoozeMinute * MINUTE + 20_000,
          act: () => ({
            type: "snooze" as const,
            alert_id: "from-the-app",
            kind: kinds[snoozeKind]!,
            until: T0 + (snoozeMinute + 30) * MINUTE
          })
        }
      ]
      const until = readings.at(-1)!.logTime + 90 * MINUTE
      const everyMinute = simulate(rules, readings, actions, until, false)
      const whenDue = simulate(rules, readings, actions, until, true)
      assert.deepStrictEqual(whenDue.told, everyMinute.told)
    },
    { arbitrary: { runs: 300 } }
  )

  it("an acknowledged urgent low is told again 30 minutes later, whatever its repeat interval, even with none", () => {
    for (const every of [5, 60, 240, null]) {
      const rules: AlertRulesShape = {
        ...defaultAlertRules,
        repeat: every === null ? {} : { URGENT_LOW: every * MINUTE }
      }
      const readings = everyFive(Array.from({ length: 12 }, () => 50))
      const acknowledge = {
        at: T0 + 7 * MINUTE,
        act: (state: SensorState) => ({
          type: "acknowledge" as const,
          alert_id: urgentFirst(state)!.alert_id,
          by: user
        })
      }
      const run = simulate(rules, readings, [acknowledge], T0 + 60 * MINUTE, true)
      const reminders = run.told.filter((t) => t.includes("reminder"))
      assert.deepStrictEqual(reminders, [`${37 * 60}s URGENT_LOW reminder-${T0 + 7 * MINUTE}`], `repeat ${every}`)
    }
  })

  it("an episode first told some minutes after it started is not repeated at once: its next slot comes first", () => {
    // Readings 8 minutes late (still live): the urgent low that started at 0 is told at 8, then at its slot 10.
    const run = simulate(defaultAlertRules, everyFive([50, 50, 50, 50], 8 * MINUTE), [], T0 + 30 * MINUTE, true)
    assert.deepStrictEqual(run.told.slice(0, 3), [
      `${8 * 60 + 0}s URGENT_LOW alert`,
      `${10 * 60}s URGENT_LOW repeat-2`,
      `${15 * 60}s URGENT_LOW repeat-3`
    ])
  })

  it("a HIGH held by quiet hours costs no tick before they end, even when HIGH repeats", () => {
    const night = Date.parse("2026-11-20T21:00:00Z") // 22:00 in Berlin
    const rules: AlertRulesShape = {
      ...defaultAlertRules,
      repeat: { HIGH: 15 * MINUTE },
      quietHours: { start: "22:00", end: "07:00", time_zone: "Europe/Berlin", days: [1, 2, 3, 4, 5, 6, 7] }
    }
    const readings = Array.from({ length: 12 * 10 }, (_, i) => ({
      t: night + i * 5 * MINUTE,
      v: 300,
      logTime: night + i * 5 * MINUTE + 3_000
    }))
    let state = initialSensorState(sensor, user)
    let ticks = 0
    let told: AlertChange | undefined
    let r = 0
    const quietEnd = Date.parse("2026-11-21T06:00:00Z")
    for (let now = night; now <= quietEnd; now += MINUTE) {
      while (r < readings.length && readings[r]!.logTime <= now) {
        state = decide(rules, state, readingAt(readings[r]!, r)).state
        r += 1
      }
      const check = nextCheckAt(rules, state)
      if (check !== null && check <= now) {
        ticks += 1
        const decision = decide(rules, state, { _tag: "Tick", now })
        state = decision.state
        told = told ?? decision.changes.find((c) => c.notify)
      }
    }
    assert.strictEqual(ticks, 1)
    assert.deepStrictEqual([told?.kind, told?.decision, told?.alert.last_notified_at], ["released", "alert", quietEnd])
  })

  it("the decision keys do not depend on which ticks ran: a lost repeat does not shift the all clear", () => {
    const readings = everyFive([50, 50, 50, 70, 75])
    const ticked = simulate(defaultAlertRules, readings, [], T0 + 25 * MINUTE, false)
    const noTicks = runAll(readings.map((r, i) => readingAt(r, i)))
    const allClear = (told: ReadonlyArray<string>) => told.filter((t) => t.includes("all-clear"))
    assert.deepStrictEqual(allClear(ticked.told), [`${20 * 60 + 3}s URGENT_LOW all-clear`])
    assert.deepStrictEqual(
      noTicks.changes.filter((c) => c.notify).map((c) => c.decision),
      ["alert", "all-clear"]
    )
  })

  it("a kind the owner turns off while it is open ends without an all clear", () => {
    const off: AlertRulesShape = { ...defaultAlertRules, high: { enabled: false, above: 250 } }
    const opened = runAll(script().reading({ t: T0, v: 300 }).inputs)
    const next = decide(off, opened.state, script(1).reading({ t: T0 + 5 * MINUTE, v: 310 }).inputs[0]!)
    assert.deepStrictEqual(
      next.changes.map((c) => [c.kind, c.notify, c.alert.status]),
      [["ended", false, "RESOLVED"]]
    )
  })

  it("NO_DATA repeats while the silence lasts when the owner asks for it", () => {
    const rules: AlertRulesShape = { ...defaultAlertRules, repeat: { NO_DATA: 10 * MINUTE } }
    const run = simulate(rules, everyFive([120, 120]), [], T0 + 60 * MINUTE, true)
    assert.deepStrictEqual(run.told, [
      `${26 * 60}s NO_DATA alert`,
      `${35 * 60}s NO_DATA repeat-1`,
      `${45 * 60}s NO_DATA repeat-2`,
      `${55 * 60}s NO_DATA repeat-3`
    ])
  })
})
