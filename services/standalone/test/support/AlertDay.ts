import {
  type AlertRulesShape,
  decide,
  defaultAlertRules,
  type EngineInput,
  initialSensorState,
  type ReadingInput,
  type SensorState
} from "@dexmon/alerting"
import {
  type Alert,
  EventId,
  encodeGlucoseEvent,
  eventHeaders,
  GlucoseEvent,
  SensorId,
  type Source,
  UserId
} from "@dexmon/domain"
import type { ProducerRecord } from "@dexmon/ports"

const MINUTE = 60_000
const HOUR = 60 * MINUTE

/** The rules the scripted day runs under: the defaults, with the rate alerts switched on. */
export const dayRules: AlertRulesShape = {
  ...defaultAlertRules,
  fallingFast: { enabled: true, rate: 3 },
  risingFast: { enabled: true, rate: 3 }
}
/** The environment that gives a notifier process `dayRules`. */
export const dayRulesEnv = { DEXMON_ALERT_FALLING_FAST: "true", DEXMON_ALERT_RISING_FAST: "true" }

/** What a sensor's day looks like; the index of a sensor picks its pattern. */
export const patterns = [
  "steady",
  "dip",
  "urgent low",
  "high",
  "fast fall and rise",
  "gaps",
  "corrections and finger-sticks",
  "late backlog",
  "silent at the end",
  "two dips and a high"
] as const

export interface DayRecord {
  readonly sensor: SensorId
  readonly user: UserId
  readonly timestamp: number
  readonly value: number
  readonly source: Source
  readonly eventId: EventId
  /** When the record reaches the log. */
  readonly logTime: number
}

/** A small deterministic PRNG (mulberry32): the same script every run. */
const random = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const clamp = (v: number) => Math.round(Math.min(400, Math.max(40, v)))

/** Each pattern's glucose curve as (minute of the day, mg/dL) keyframes, linear in between. */
const keyframes: Record<(typeof patterns)[number], ReadonlyArray<readonly [number, number]>> = {
  steady: [[0, 115]],
  dip: [
    [0, 110],
    [570, 110],
    [600, 63],
    [660, 63],
    [690, 110]
  ],
  // 2 mg/dL/min down from 110 to 48, twenty minutes there, then back up.
  "urgent low": [
    [0, 110],
    [480, 110],
    [511, 48],
    [531, 48],
    [561, 110]
  ],
  high: [
    [0, 140],
    [660, 140],
    [720, 285],
    [840, 285],
    [900, 140]
  ],
  "fast fall and rise": [
    [0, 200],
    [300, 200],
    [330, 80],
    [900, 80],
    [930, 200]
  ],
  gaps: [[0, 115]],
  "corrections and finger-sticks": [
    [0, 110],
    [570, 110],
    [600, 63],
    [660, 63],
    [690, 110]
  ],
  "late backlog": [
    [0, 115],
    [600, 58],
    [655, 58],
    [700, 115]
  ],
  "silent at the end": [[0, 115]],
  "two dips and a high": [
    [0, 130],
    [190, 130],
    [200, 64],
    [240, 64],
    [250, 130],
    [390, 130],
    [400, 64],
    [430, 64],
    [440, 130],
    [980, 130],
    [1000, 270],
    [1060, 270],
    [1080, 130]
  ]
}

const curve = (pattern: (typeof patterns)[number], minute: number): number => {
  const frames = keyframes[pattern]
  const after = frames.findIndex(([m]) => m > minute)
  if (after === -1) return frames[frames.length - 1]![1]
  if (after === 0) return frames[0]![1]
  const [m0, v0] = frames[after - 1]!
  const [m1, v1] = frames[after]!
  return v0 + ((v1 - v0) * (minute - m0)) / (m1 - m0)
}

/**
 * A day of CGM traffic for `sensorCount` sensors (`sensorsPerUser` per user),
 * one reading every five minutes ending at `end`, in the order it reaches the
 * log. Live readings reach the log 3 seconds after their timestamp; the
 * "late backlog" sensors are offline for eight hours and then send them at once; the "gaps"
 * sensors fall silent twice; the "corrections" sensors get a newer SENSOR value
 * for an instant and finger-sticks that never alert; "silent at the end" stops
 * 40 minutes before `end`.
 */
export const scriptDay = (options: {
  readonly run: string
  readonly end: number
  readonly sensorCount: number
  readonly sensorsPerUser: number
}): ReadonlyArray<DayRecord> => {
  const start = options.end - 24 * HOUR
  const records: Array<DayRecord> = []
  let eventCounter = 0
  // Event ids in the order the receiver would have issued them (by log time, then as listed).
  const pending: Array<Omit<DayRecord, "eventId">> = []
  for (let i = 0; i < options.sensorCount; i++) {
    const pattern = patterns[i % patterns.length]!
    const sensor = SensorId.make(`${options.run}-s${i}`)
    const user = UserId.make(`${options.run}-u${Math.floor(i / options.sensorsPerUser)}`)
    const noise = random(i + 1)
    for (let m = 0; m <= 1440; m += 5) {
      const timestamp = start + m * MINUTE
      if (pattern === "gaps" && ((m > 400 && m < 445) || (m > 900 && m < 1080))) continue
      if (pattern === "silent at the end" && m > 1400) continue
      const value = clamp(curve(pattern, m) + (noise() - 0.5) * 4)
      // The phone is offline from minute 600 and sends what it kept at minute 1080: the low in it is old news.
      const offline = pattern === "late backlog" && m >= 600 && m < 1080
      const logTime = offline ? start + 1080 * MINUTE : timestamp + 3_000
      pending.push({ sensor, user, timestamp, value, source: "SENSOR", logTime })
      if (pattern === "corrections and finger-sticks") {
        if (m === 300) {
          // A low value the sensor then corrects at the same instant: the correction stands.
          pending[pending.length - 1] = { sensor, user, timestamp, value: 52, source: "SENSOR", logTime }
          pending.push({ sensor, user, timestamp, value, source: "SENSOR", logTime: logTime + 1_000 })
        }
        if (m % 120 === 60) {
          pending.push({ sensor, user, timestamp, value: 48, source: "MANUAL", logTime: logTime + 2_000 })
          pending.push({
            sensor,
            user,
            timestamp: timestamp + 2 * MINUTE,
            value: 300,
            source: "MANUAL",
            logTime: logTime + 120_000
          })
        }
      }
    }
  }
  pending.sort((a, b) => a.logTime - b.logTime || a.sensor.localeCompare(b.sensor) || a.timestamp - b.timestamp)
  for (const record of pending) {
    eventCounter += 1
    const millis = record.logTime.toString(16).padStart(12, "0")
    records.push({
      ...record,
      eventId: EventId.make(
        `${millis.slice(0, 8)}-${millis.slice(8, 12)}-7000-8000-${eventCounter.toString(16).padStart(12, "0")}`
      )
    })
  }
  return records
}

const encoder = new TextEncoder()

/** The record as the receiver appends it to `glucose.events`, with its log time. */
export const toProducerRecord = (record: DayRecord): ProducerRecord => {
  const event = new GlucoseEvent({
    schema_version: 1,
    event_id: record.eventId,
    sensor_id: record.sensor,
    user_id: record.user,
    timestamp: record.timestamp,
    glucose_value: record.value,
    source: record.source,
    received_at: record.logTime
  })
  return {
    key: record.sensor,
    value: encoder.encode(encodeGlucoseEvent(event)),
    headers: eventHeaders(event),
    timestamp: record.logTime
  }
}

/** The record as the engine sees it, at `position` in the log (positions only need to grow per sensor). */
export const toReadingInput = (record: DayRecord, position: number): ReadingInput => ({
  _tag: "Reading",
  position,
  logTime: record.logTime,
  event: {
    timestamp: record.timestamp,
    glucose_value: record.value,
    source: record.source,
    event_id: record.eventId
  }
})

/** An episode as the tests compare them. */
export const episodeRow = (alert: Alert) => ({
  alert_id: alert.alert_id,
  user_id: alert.user_id,
  sensor_id: alert.sensor_id,
  alert_type: alert.alert_type,
  status: alert.status,
  started_at: alert.started_at,
  ended_at: alert.ended_at,
  glucose_value: alert.glucose_value,
  extreme_value: alert.extreme_value,
  last_value: alert.last_value,
  last_reading_at: alert.last_reading_at
})
export type EpisodeRow = ReturnType<typeof episodeRow>

/**
 * The episodes the day must leave: the pure engine run over each sensor's
 * records in log order, then one clock tick at `checkedAt` (after the
 * notifier caught up), sorted by alert id.
 */
export const expectedEpisodes = (records: ReadonlyArray<DayRecord>, checkedAt: number): ReadonlyArray<EpisodeRow> => {
  const states = new Map<string, SensorState>()
  const rows = new Map<string, Alert>()
  const apply = (sensor: string, state: SensorState, input: EngineInput) => {
    const decision = decide(dayRules, state, input)
    states.set(sensor, decision.state)
    for (const change of decision.changes) rows.set(change.alert.alert_id, change.alert)
  }
  records.forEach((record, position) => {
    const state = states.get(record.sensor) ?? initialSensorState(record.sensor, record.user)
    apply(record.sensor, state, toReadingInput(record, position))
  })
  for (const [sensor, state] of states) apply(sensor, state, { _tag: "Tick", now: checkedAt })
  return [...rows.values()].map(episodeRow).sort((a, b) => a.alert_id.localeCompare(b.alert_id))
}
