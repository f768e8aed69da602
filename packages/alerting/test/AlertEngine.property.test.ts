import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, Schema } from "effect"
import { defaultAlertRules, type EngineInput } from "../src/index.ts"
import { MINUTE, nextEventId, opened, rows, runAll, T0 } from "./Script.ts"

const int = (minimum: number, maximum: number) => Schema.Int.check(Schema.isBetween({ minimum, maximum }))

/** One step of a sensor's day: how long after the previous reading, how the value moves, whether it came late. */
const Step = Schema.Struct({
  gapCode: int(0, 19),
  delta: int(-18, 18),
  lateCode: int(0, 19)
})
type Step = typeof Step.Type

// Mostly the 5-minute cadence; sometimes a 1-minute one, a gap, a long silence, a day off.
const gapOf = (code: number) => (code < 14 ? 5 : code < 16 ? 1 : code < 18 ? 25 : code < 19 ? 60 : 26 * 60)

interface TraceReading {
  readonly t: number
  readonly v: number
  readonly logTime: number
}

/** A random walk of glucose values from 120 mg/dL, clamped to what a sensor reports; log times never go back. */
const toTrace = (steps: ReadonlyArray<Step>): Array<TraceReading> => {
  const trace: Array<TraceReading> = []
  let t = T0
  let v = 120
  let logTime = 0
  for (const step of steps) {
    t += gapOf(step.gapCode) * MINUTE
    v = Math.min(400, Math.max(40, v + step.delta * (step.gapCode < 14 ? 1 : 2)))
    // One reading in twenty reaches the log 40 minutes late (a phone that was offline).
    logTime = Math.max(logTime, t + (step.lateCode === 0 ? 40 * MINUTE : 3_000))
    trace.push({ t, v, logTime })
  }
  return trace
}

const toInputs = (trace: ReadonlyArray<TraceReading>, from = 0): Array<EngineInput> =>
  trace.map((r, i) => ({
    _tag: "Reading",
    position: from + i,
    logTime: r.logTime,
    event: { timestamp: r.t, glucose_value: r.v, source: "SENSOR", event_id: nextEventId() }
  }))

const traces = Arbitrary.map(Arbitrary.array(Arbitrary.schema(Step), { minLength: 1, maxLength: 80 }), toTrace)
const traceAndCut = Arbitrary.flatMap(traces, (trace) =>
  Arbitrary.map(Arbitrary.schema(int(0, trace.length - 1)), (cut) => ({ trace, cut }))
)

describe("alert engine properties", () => {
  it.prop(
    "redelivering any suffix of a sensor's events changes neither state nor alerts",
    [traceAndCut],
    ([{ trace, cut }]) => {
      const inputs = toInputs(trace)
      const first = runAll(inputs)
      const redelivered = runAll(inputs.slice(cut), defaultAlertRules, first.state)
      assert.strictEqual(redelivered.changes.length, 0)
      assert.deepStrictEqual(redelivered.state, first.state)
    }
  )

  it.prop(
    "re-appending any suffix (a DLQ replay: new offsets, later log times) changes no alert",
    [traceAndCut],
    ([{ trace, cut }]) => {
      const inputs = toInputs(trace)
      const first = runAll(inputs)
      const replayAt = trace[trace.length - 1]!.logTime + 60 * MINUTE
      const replay = inputs
        .slice(cut)
        .map(
          (input, i): EngineInput =>
            input._tag === "Reading" ? { ...input, position: inputs.length + i, logTime: replayAt + i } : input
        )
      const replayed = runAll(replay, defaultAlertRules, first.state)
      assert.strictEqual(replayed.changes.length, 0)
      assert.deepStrictEqual(replayed.state.open, first.state.open)
    }
  )

  const ManualFinger = Schema.Struct({ after: int(0, 79), value: int(20, 400), sameInstant: Schema.Boolean })
  it.prop(
    "any interleaving of MANUAL events changes no alert",
    [traces, Arbitrary.array(Arbitrary.schema(ManualFinger), { maxLength: 30 })],
    ([trace, manuals]) => {
      const sensorOnly = toInputs(trace)
      const mixed: Array<EngineInput> = []
      trace.forEach((reading, i) => {
        mixed.push(sensorOnly[i]!)
        for (const manual of manuals.filter((m) => m.after % trace.length === i)) {
          mixed.push({
            _tag: "Reading",
            position: 0,
            logTime: reading.logTime,
            event: {
              timestamp: manual.sameInstant ? reading.t : reading.t + 2 * MINUTE,
              glucose_value: manual.value,
              source: "MANUAL",
              event_id: nextEventId()
            }
          })
        }
      })
      const positioned = mixed.map((input, position) => (input._tag === "Reading" ? { ...input, position } : input))
      assert.deepStrictEqual(rows(runAll(positioned)), rows(runAll(sensorOnly)))
    }
  )

  it.prop(
    "an hour below 70 gives exactly one LOW",
    [Arbitrary.array(Arbitrary.schema(int(56, 69)), { minLength: 12, maxLength: 12 })],
    ([values]) => {
      const trace = values.map((v, i) => ({ t: T0 + i * 5 * MINUTE, v, logTime: T0 + i * 5 * MINUTE + 3_000 }))
      const run = runAll(toInputs(trace))
      assert.strictEqual(opened(run, "LOW").length, 1)
      assert.strictEqual(run.changes.filter((c) => c.notify && c.alert.alert_type === "LOW").length, 1)
    }
  )

  it.prop(
    "a steady fall of 2 mg/dL/min raises URGENT_LOW_SOON before any reading is at or below 55",
    [int(100, 250), int(1, 5)],
    ([start, cadence]) => {
      const trace: Array<TraceReading> = []
      for (let i = 0, v = start; v >= 40; i++, v = start - 2 * cadence * i) {
        trace.push({ t: T0 + i * cadence * MINUTE, v, logTime: T0 + i * cadence * MINUTE + 3_000 })
      }
      const run = runAll(toInputs(trace))
      const soon = opened(run, "URGENT_LOW_SOON")
      assert.strictEqual(soon.length, 1)
      assert.isTrue(soon[0]!.notify)
      const firstUrgent = trace.find((r) => r.v <= 55)!
      assert.isBelow(soon[0]!.alert.started_at, firstUrgent.t)
    }
  )

  it.prop(
    "a backlog older than the live window raises only BACKFILLED episodes; one still low when a live reading arrives becomes ACTIVE once",
    [traces, int(56, 69)],
    ([trace, liveValue]) => {
      const last = trace[trace.length - 1]!
      const postedAt = last.t + 16 * MINUTE
      const backlog = runAll(toInputs(trace.map((r) => ({ ...r, logTime: postedAt }))))
      assert.isTrue(backlog.changes.every((c) => !c.notify))
      assert.isTrue([...backlog.alerts.values()].every((a) => a.status === "BACKFILLED"))

      const lowWasOpen = backlog.state.open.some((e) => e.kind === "LOW")
      const live = runAll(
        toInputs(
          [
            { t: postedAt, v: liveValue, logTime: postedAt + 3_000 },
            { t: postedAt + 5 * MINUTE, v: liveValue, logTime: postedAt + 5 * MINUTE + 3_000 }
          ],
          backlog.state.position + 1
        ),
        defaultAlertRules,
        backlog.state
      )
      const lowNotices = live.changes.filter((c) => c.notify && c.alert.alert_type === "LOW")
      assert.deepStrictEqual(
        lowNotices.map((c) => c.kind),
        [lowWasOpen ? "activated" : "opened"]
      )
      const low = live.state.open.find((e) => e.kind === "LOW")!
      assert.strictEqual(low.status, "ACTIVE")
    }
  )

  it.prop(
    "20 silent minutes raise one NO_DATA that ends on the next reading",
    [traces, Arbitrary.array(Arbitrary.schema(int(20 * 60 + 1, 24 * 3600 - 1)), { minLength: 1, maxLength: 20 })],
    ([trace, tickSeconds]) => {
      const live = trace.map((r) => ({ ...r, logTime: r.t + 3_000 }))
      const last = live[live.length - 1]!
      const ticks: Array<EngineInput> = [...tickSeconds]
        .sort((a, b) => a - b)
        .map((s) => ({ _tag: "Tick", now: last.t + s * 1000 }))
      const back = last.t + 24 * 3600 * 1000 - 1
      const inputs = [...toInputs(live), ...ticks, ...toInputs([{ t: back, v: 100, logTime: back }], live.length)]
      const withoutSilence = runAll(toInputs(live))
      const run = runAll(inputs)
      const noData = run.changes
        .filter((c) => c.alert.alert_type === "NO_DATA")
        .slice(withoutSilence.changes.filter((c) => c.alert.alert_type === "NO_DATA").length)
      assert.deepStrictEqual(
        noData.map((c) => [c.kind, c.notify, c.alert.started_at]),
        [
          ["opened", true, last.t + 20 * MINUTE],
          ["resolved", true, last.t + 20 * MINUTE]
        ]
      )
    }
  )

  const TickPlan = Schema.Struct({ before: int(0, 79), at: int(0, 1000) })
  it.prop(
    "a notifier that ticks between readings and one that never ticks (catching up) leave the same episodes",
    [traces, Arbitrary.array(Arbitrary.schema(TickPlan), { maxLength: 40 })],
    ([trace, plan]) => {
      const live = toInputs(trace)
      const ticked: Array<EngineInput> = []
      live.forEach((input, i) => {
        const previousLog = i === 0 ? 0 : trace[i - 1]!.logTime
        const thisLog = trace[i]!.logTime
        const times = plan
          .filter((p) => p.before % live.length === i && i > 0)
          .map((p) => previousLog + Math.floor(((thisLog - previousLog) * p.at) / 1000))
          .sort((a, b) => a - b)
        for (const now of times) ticked.push({ _tag: "Tick", now })
        ticked.push(input)
      })
      assert.deepStrictEqual(rows(runAll(ticked)), rows(runAll(live)))
    }
  )
})
