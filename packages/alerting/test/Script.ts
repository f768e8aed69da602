import { type Alert, EventId, SensorId, type Source, UserId } from "@dexmon/domain"
import {
  type AlertChange,
  type AlertRulesShape,
  decide,
  defaultAlertRules,
  type EngineInput,
  initialSensorState,
  type SensorState
} from "../src/index.ts"

export const MINUTE = 60_000
export const T0 = Date.parse("2026-11-20T06:00:00.000Z")

let eventCounter = 0
/** Time-ordered event ids, as the receiver issues them: a later call gets a larger id. */
export const nextEventId = (): EventId => {
  eventCounter += 1
  return EventId.make(`01900000-0000-7000-8000-${eventCounter.toString(16).padStart(12, "0")}`)
}

export interface ScriptReading {
  readonly t: number
  readonly v: number
  /** Log time; a live reading by default (a few seconds after its timestamp). */
  readonly logTime?: number
  readonly source?: Source
  readonly eventId?: EventId
}

/** Builds inputs with positions in the order given, from `from` (the offset after a state's position, to go on from it). */
export const script = (from = 0) => {
  const inputs: Array<EngineInput> = []
  let position = from
  const api = {
    reading: (r: ScriptReading) => {
      inputs.push({
        _tag: "Reading",
        position: position++,
        logTime: r.logTime ?? r.t + 3_000,
        event: {
          timestamp: r.t,
          glucose_value: r.v,
          source: r.source ?? "SENSOR",
          event_id: r.eventId ?? nextEventId()
        }
      })
      return api
    },
    /** Live SENSOR readings every `every` ms from `from`. */
    series: (from: number, values: ReadonlyArray<number>, every = 5 * MINUTE) => {
      values.forEach((v, i) => {
        api.reading({ t: from + i * every, v })
      })
      return api
    },
    tick: (now: number) => {
      inputs.push({ _tag: "Tick", now })
      return api
    },
    inputs
  }
  return api
}

export interface Run {
  readonly state: SensorState
  readonly changes: ReadonlyArray<AlertChange>
  /** The last row of every episode, by alert id. */
  readonly alerts: ReadonlyMap<string, Alert>
}

export const sensor = SensorId.make("cgm-1")
export const user = UserId.make("user-1")

export const runAll = (
  inputs: ReadonlyArray<EngineInput>,
  rules: AlertRulesShape = defaultAlertRules,
  initial: SensorState = initialSensorState(sensor, user)
): Run => {
  let state = initial
  const changes: Array<AlertChange> = []
  for (const input of inputs) {
    const decision = decide(rules, state, input)
    state = decision.state
    changes.push(...decision.changes)
  }
  const alerts = new Map<string, Alert>()
  for (const change of changes) alerts.set(change.alert.alert_id, change.alert)
  return { state, changes, alerts }
}

/** The episodes of a run as comparable plain rows, sorted by start and kind. */
export const rows = (run: Run) =>
  [...run.alerts.values()]
    .map((a) => ({
      alert_id: a.alert_id,
      alert_type: a.alert_type,
      status: a.status,
      started_at: a.started_at,
      ended_at: a.ended_at,
      glucose_value: a.glucose_value,
      extreme_value: a.extreme_value,
      last_value: a.last_value,
      last_reading_at: a.last_reading_at
    }))
    .sort((a, b) => a.started_at - b.started_at || a.alert_type.localeCompare(b.alert_type))

export const opened = (run: Run, kind?: string) =>
  run.changes.filter(
    (c) => (c.kind === "opened" || c.kind === "recorded") && (kind === undefined || c.alert.alert_type === kind)
  )

export const notified = (run: Run) => run.changes.filter((c) => c.notify)

/** Inputs that are not readings: the clock and the owner's actions, at positions after the script's own. */
export const tickEvery = (from: number, to: number, every = MINUTE): Array<EngineInput> => {
  const ticks: Array<EngineInput> = []
  for (let now = from; now <= to; now += every) ticks.push({ _tag: "Tick", now })
  return ticks
}

/** Merges readings, ticks and actions by time (log time, tick time), ties keeping the given order; renumbers positions. */
export const timeline = (...parts: ReadonlyArray<ReadonlyArray<EngineInput>>): Array<EngineInput> => {
  const at = (input: EngineInput) => (input._tag === "Tick" ? input.now : input.logTime)
  const merged = parts
    .flat()
    .map((input, order) => ({ input, order }))
    .sort((a, b) => at(a.input) - at(b.input) || a.order - b.order)
  let position = 0
  return merged.map(({ input }) => (input._tag === "Tick" ? input : { ...input, position: position++ }))
}
