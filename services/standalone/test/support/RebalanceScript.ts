import { spawnSync } from "node:child_process"
import { type AlertRulesShape, decide, type EngineInput, initialSensorState, type SensorState } from "@dexmon/alerting"
import {
  type Alert,
  applyConflictRule,
  type GlucoseEvent,
  notificationId,
  type ReadingState,
  SensorId,
  type Source,
  UserId
} from "@dexmon/domain"
import type { ConsumerRecord } from "@dexmon/ports"

const SECOND = 1_000
/** Readings per sensor, one every ten seconds: ten minutes of a sensor's life, told in a few seconds. */
export const READINGS_PER_SENSOR = 60
const SPACING = 10 * SECOND

/** What a sensor's ten minutes look like; the index of a sensor picks its pattern. */
export const patterns = ["dip", "urgent low", "high", "steady", "two dips"] as const

/**
 * Each pattern's curve as (reading index, mg/dL) keyframes, linear in between. Every low and urgent low
 * ends with clear readings before the trace does (the steep falls of compressed time leave some
 * URGENT_LOW_SOON open, which no tick acts on), so once a sensor's trace is consumed no clock tick has
 * anything to decide for it (a silence needs twenty minutes): the outcome depends on the log alone.
 *
 * The log times are when the receiver appended, after every timestamp of the trace: an urgent low's
 * repeats that fell due before it was told are passed over, so none is sent (repeats are the clock's
 * business, tested elsewhere); the comparison holds whatever those log times were.
 */
const keyframes: Record<(typeof patterns)[number], ReadonlyArray<readonly [number, number]>> = {
  dip: [
    [0, 110],
    [10, 110],
    [20, 62],
    [35, 62],
    [45, 110]
  ],
  "urgent low": [
    [0, 120],
    [10, 120],
    [22, 48],
    [35, 48],
    [45, 120]
  ],
  high: [
    [0, 150],
    [10, 150],
    [20, 290],
    [35, 290],
    [45, 150]
  ],
  steady: [[0, 115]],
  "two dips": [
    [0, 110],
    [6, 110],
    [12, 64],
    [18, 64],
    [24, 110],
    [30, 110],
    [36, 66],
    [40, 66],
    [46, 110]
  ]
}

const curve = (pattern: (typeof patterns)[number], index: number): number => {
  const frames = keyframes[pattern]
  const after = frames.findIndex(([i]) => i > index)
  if (after === -1) return frames[frames.length - 1]![1]
  if (after === 0) return frames[0]![1]
  const [i0, v0] = frames[after - 1]!
  const [i1, v1] = frames[after]!
  return v0 + ((v1 - v0) * (index - i0)) / (i1 - i0)
}

/** A small deterministic PRNG (mulberry32): the same script every run. */
const random = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

export interface PostedReading {
  readonly sensor_id: SensorId
  readonly timestamp: number
  readonly glucose_value: number
}

/** One request the app makes: a batch of sensor readings or one finger-stick. */
export interface Post {
  readonly source: Source
  readonly readings: ReadonlyArray<PostedReading>
}

/** One user's part of the load: their requests, to be made one after the other, in this order. */
export interface UserScript {
  readonly user: UserId
  readonly sensors: ReadonlyArray<SensorId>
  readonly posts: ReadonlyArray<Post>
}

/**
 * User `user`'s part of the load: `sensorsPerUser` sensors (ids of the run), every sensor ten minutes
 * of readings ending ten seconds before `postedAt`, so every reading is live when it reaches the log. Each user's readings go in six batches of ten per sensor,
 * and on the way:
 * - every reading whose index is 3 modulo 7 is posted again, identical, in the next batch;
 * - every third sensor's reading 25 is posted again in the next batch with another value (the newer wins);
 * - even sensors get a finger-stick at the instant of their reading 15 (the sensor value stands);
 * - sensors 1 modulo 4 get a finger-stick five seconds after reading 24, and the next batch brings a
 *   sensor reading at that instant (which replaces it);
 * - sensors 2 modulo 5 get two finger-sticks of different values three seconds after reading 44 (the
 *   later stands), and the later is posted once more at the end.
 */
export const scriptUser = (options: {
  readonly run: string
  readonly user: number
  readonly sensorsPerUser: number
  readonly postedAt: number
}): UserScript => {
  const start = options.postedAt - READINGS_PER_SENSOR * SPACING
  const at = (index: number) => start + index * SPACING
  const u = options.user
  const user = UserId.make(`${options.run}-u${u}`)
  const sensors = Array.from({ length: options.sensorsPerUser }, (_, k) => {
    const i = u * options.sensorsPerUser + k
    const noise = random(i + 1)
    const values = Array.from({ length: READINGS_PER_SENSOR }, (_, j) =>
      Math.round(curve(patterns[i % patterns.length]!, j) + (noise() - 0.5) * 2)
    )
    return { i, id: SensorId.make(`${options.run}-s${i}`), values }
  })
  const posts: Array<Post> = []
  const manual = (sensor_id: SensorId, timestamp: number, glucose_value: number) =>
    posts.push({ source: "MANUAL", readings: [{ sensor_id, timestamp, glucose_value }] })
  for (let round = 0; round < READINGS_PER_SENSOR / 10; round++) {
    const batch: Array<PostedReading> = []
    for (const { i, id, values } of sensors) {
      const reading = (j: number, value = values[j]!): PostedReading => ({
        sensor_id: id,
        timestamp: at(j),
        glucose_value: value
      })
      for (let j = round * 10; j < round * 10 + 10; j++) batch.push(reading(j))
      for (let j = (round - 1) * 10; j >= 0 && j < round * 10; j++) if (j % 7 === 3) batch.push(reading(j))
      if (round === 3 && i % 3 === 0) batch.push(reading(25, values[25]! + 15))
      if (round === 3 && i % 4 === 1) batch.push({ sensor_id: id, timestamp: at(24) + 5 * SECOND, glucose_value: 77 })
    }
    posts.push({ source: "SENSOR", readings: batch })
    for (const { i, id } of sensors) {
      if (round === 1 && i % 2 === 0) manual(id, at(15), 100)
      if (round === 2 && i % 4 === 1) manual(id, at(24) + 5 * SECOND, 60)
      if (round === 4 && i % 5 === 2) {
        manual(id, at(44) + 3 * SECOND, 130)
        manual(id, at(44) + 3 * SECOND, 140)
      }
      if (round === 5 && i % 5 === 2) manual(id, at(44) + 3 * SECOND, 140)
    }
  }
  return { user, sensors: sensors.map((s) => s.id), posts }
}

/**
 * What each sensor's part of the log must be, from the script: its readings in the order the user
 * posted them, each batch appended oldest first (the receiver sorts a batch by timestamp, stably).
 */
export const scriptedLogOrder = (scripts: ReadonlyArray<UserScript>) => {
  const bySensor = new Map<string, Array<readonly [number, number, string, string]>>()
  for (const { user, posts } of scripts) {
    for (const post of posts) {
      const sorted = [...post.readings].sort((a, b) => a.timestamp - b.timestamp)
      for (const r of sorted) {
        const list = bySensor.get(r.sensor_id) ?? []
        list.push([r.timestamp, r.glucose_value, post.source, user])
        bySensor.set(r.sensor_id, list)
      }
    }
  }
  return bySensor
}

/** A reading event as it sits in the log: where, when, and what. */
export interface LoggedEvent {
  readonly record: ConsumerRecord
  readonly event: GlucoseEvent
}

/** The log's events per sensor, in offset order (a sensor's events share one partition). */
export const bySensorInLogOrder = (events: ReadonlyArray<LoggedEvent>) => {
  const bySensor = new Map<string, Array<LoggedEvent>>()
  for (const logged of events) {
    const list = bySensor.get(logged.event.sensor_id) ?? []
    list.push(logged)
    bySensor.set(logged.event.sensor_id, list)
  }
  for (const list of bySensor.values()) list.sort((a, b) => a.record.offset - b.record.offset)
  return bySensor
}

/** A stored reading as the test compares them. */
export type ReadingRow = readonly [
  sensor: string,
  timestamp: number,
  user: string,
  value: number,
  source: string,
  version: number,
  eventId: string
]
/** A superseded reading in the history table: what it was and which event replaced it. */
export type HistoryRow = readonly [
  sensor: string,
  timestamp: number,
  value: number,
  source: string,
  version: number,
  eventId: string,
  supersededBy: string
]

const byKey = (a: ReadonlyArray<unknown>, b: ReadonlyArray<unknown>) =>
  String(a[0]).localeCompare(String(b[0])) || Number(a[1]) - Number(b[1]) || Number(a[4]) - Number(b[4])

/**
 * The readings store the log must leave: the domain's conflict rule applied to each sensor's events in
 * log order, each event at its first position. Sorted by sensor, timestamp (and version in the history).
 */
export const expectedReadings = (bySensor: ReadonlyMap<string, ReadonlyArray<LoggedEvent>>) => {
  const rows: Array<ReadingRow> = []
  const history: Array<HistoryRow> = []
  for (const events of bySensor.values()) {
    const stored = new Map<number, ReadingState & { readonly user: string }>()
    for (const { record, event } of events) {
      const current = stored.get(event.timestamp)
      const outcome = applyConflictRule(current, {
        sensor_id: event.sensor_id,
        user_id: event.user_id,
        timestamp: event.timestamp,
        glucose_value: event.glucose_value,
        source: event.source,
        event_id: event.event_id,
        position: { partition: record.partition, offset: record.offset }
      })
      if (outcome._tag === "Keep") continue
      if (outcome._tag === "Replace") {
        const old = outcome.superseded
        history.push([
          old.sensor_id,
          old.timestamp,
          old.glucose_value,
          old.source,
          old.version,
          old.event_id,
          event.event_id
        ])
      }
      stored.set(event.timestamp, { ...outcome.next, user: current?.user ?? event.user_id })
    }
    for (const s of stored.values())
      rows.push([s.sensor_id, s.timestamp, s.user, s.glucose_value, s.source, s.version, s.event_id])
  }
  return { rows: rows.sort(byKey), history: history.sort(byKey) }
}

/**
 * The episodes and notifications the log must leave: the pure alert engine over each sensor's events
 * in log order (position = offset, lateness from the record's log time, the settings version stamped
 * on the event), as the notifier decides them. Then one clock tick at `checkedAt` for every sensor:
 * `tickChanges` counts what it decided, which must be nothing for the comparison not to depend on when
 * the notifiers' own ticks ran.
 */
export const expectedAlerts = (
  bySensor: ReadonlyMap<string, ReadonlyArray<LoggedEvent>>,
  rules: AlertRulesShape,
  checkedAt: number
) => {
  const alerts = new Map<string, Alert>()
  const notifications: Array<string> = []
  let tickChanges = 0
  for (const events of bySensor.values()) {
    let state: SensorState | undefined
    const apply = (input: EngineInput) => {
      const decision = decide(rules, state!, input)
      state = decision.state
      for (const change of decision.changes) {
        alerts.set(change.alert.alert_id, change.alert)
        if (change.notify) notifications.push(notificationId(change.alert.alert_id, change.decision))
      }
      return decision.changes.length
    }
    for (const { record, event } of events) {
      state ??= initialSensorState(event.sensor_id, event.user_id)
      apply({
        _tag: "Reading",
        position: record.offset,
        logTime: record.timestamp,
        event: {
          timestamp: event.timestamp,
          glucose_value: event.glucose_value,
          source: event.source,
          event_id: event.event_id
        },
        settingsVersion: event.settings_version ?? 0
      })
    }
    if (state !== undefined) tickChanges += apply({ _tag: "Tick", now: checkedAt })
  }
  return {
    alerts: [...alerts.values()].map(alertRow).sort((a, b) => a.alert_id.localeCompare(b.alert_id)),
    notifications: notifications.sort(),
    tickChanges
  }
}

/** An episode row with every column of `glucose_alerts`, timestamps as epoch ms. */
export const alertRow = (alert: Alert) => ({
  alert_id: alert.alert_id,
  user_id: alert.user_id,
  sensor_id: alert.sensor_id,
  alert_type: alert.alert_type,
  status: alert.status,
  timestamp: alert.timestamp,
  started_at: alert.started_at,
  ended_at: alert.ended_at,
  glucose_value: alert.glucose_value,
  extreme_value: alert.extreme_value,
  last_value: alert.last_value,
  last_reading_at: alert.last_reading_at,
  acknowledged_at: alert.acknowledged_at,
  acknowledged_by: alert.acknowledged_by,
  snoozed_until: alert.snoozed_until,
  notification_count: alert.notification_count,
  last_notified_at: alert.last_notified_at,
  silenced_by: alert.silenced_by
})
export type AlertRow = ReturnType<typeof alertRow>

/**
 * Every row of `glucose_alerts` and `glucose_alerts_open` for these users, read with an independent
 * client (the Debian package python3-cassandra), at QUORUM, sorted by alert id, timestamps as epoch ms.
 */
export const alertsWithPython = (contactPoints: string, keyspace: string, users: ReadonlyArray<string>) => {
  const [host, port] = contactPoints.split(",")[0]!.split(":")
  const script = `
import json, sys, calendar
from cassandra.cluster import Cluster
from cassandra import ConsistencyLevel
from cassandra.query import SimpleStatement
session = Cluster(['${host}'], port=${port ?? 9042}).connect('${keyspace}')
def ms(v):
    return None if v is None else calendar.timegm(v.utctimetuple()) * 1000 + v.microsecond // 1000
def num(v):
    return None if v is None else (int(v) if float(v).is_integer() else v)
columns = ["alert_id", "user_id", "sensor_id", "alert_type", "status", "timestamp", "started_at", "ended_at",
           "glucose_value", "extreme_value", "last_value", "last_reading_at", "acknowledged_at", "acknowledged_by",
           "snoozed_until", "notification_count", "last_notified_at", "silenced_by"]
times = {"timestamp", "started_at", "ended_at", "last_reading_at", "acknowledged_at", "snoozed_until", "last_notified_at"}
numbers = {"glucose_value", "extreme_value", "last_value", "notification_count"}
rows, open_ids = [], []
for user in json.loads(sys.stdin.read()):
    query = SimpleStatement("SELECT " + ", ".join(columns) + " FROM glucose_alerts WHERE user_id = %s",
                            consistency_level=ConsistencyLevel.QUORUM)
    for r in session.execute(query, [user]):
        row = {}
        for c in columns:
            v = getattr(r, c)
            row[c] = ms(v) if c in times else num(v) if c in numbers else (None if v is None else str(v))
        rows.append(row)
    query = SimpleStatement("SELECT alert_id FROM glucose_alerts_open WHERE user_id = %s",
                            consistency_level=ConsistencyLevel.QUORUM)
    open_ids.extend(str(r.alert_id) for r in session.execute(query, [user]))
rows.sort(key=lambda r: r["alert_id"])
print(json.dumps({"rows": rows, "open": sorted(open_ids)}))
`
  const result = spawnSync("/usr/bin/python3", ["-c", script], {
    input: JSON.stringify(users),
    encoding: "utf8",
    timeout: 120_000,
    maxBuffer: 64 * 1024 * 1024
  })
  if (result.status !== 0) throw new Error(`python3-cassandra failed: ${result.stderr}`)
  return JSON.parse(result.stdout) as { readonly rows: ReadonlyArray<AlertRow>; readonly open: ReadonlyArray<string> }
}
