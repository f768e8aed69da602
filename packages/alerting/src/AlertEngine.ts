import {
  Alert,
  type AlertStatus,
  type AlertType,
  deriveAlertId,
  type EventId,
  type SilencedBy,
  type Source,
  type UserId
} from "@dexmon/domain"
import type { AlertRulesShape } from "./AlertRules.ts"
import { quietPeriodAt } from "./QuietHours.ts"
import {
  initialSensorState,
  MAX_WINDOW_READINGS,
  type OpenEpisode,
  type SensorState,
  type WindowReading
} from "./SensorState.ts"
import { trendAt } from "./Trend.ts"

/** A reading as the engine sees it: the event and where and when it reached the log. */
export interface ReadingInput {
  readonly _tag: "Reading"
  /** The record's offset in its log partition. */
  readonly position: number
  /** The record's log time (epoch ms): lateness is measured from it, never from the engine's clock. */
  readonly logTime: number
  readonly event: {
    readonly timestamp: number
    readonly glucose_value: number
    readonly source: Source
    readonly event_id: EventId
  }
  /** The owner's alert-settings version the receiver stamped on the event (0 or absent: the deployment's rules). */
  readonly settingsVersion?: number
  /**
   * The user the reading belongs to (absent: the state's user). Another user than the state's means
   * the sensor changed hands: the receiver accepted the reading from its new owner.
   */
  readonly user_id?: UserId
}

/** The clock: the notifier ticks a sensor when its `nextCheckAt` has passed (for `NO_DATA` and retirement). */
export interface TickInput {
  readonly _tag: "Tick"
  readonly now: number
  /**
   * Where the tick sits in the log (the notifier appends its ticks there): like a
   * reading, one at or before the state's position is a redelivery and changes
   * nothing, and a state that decided it covers its position. Absent: a tick
   * outside the log (a test's, a replay's), which moves no position.
   */
  readonly position?: number
}

/**
 * What the sensor's owner did, travelling on the event log with the sensor's
 * key, so it is ordered with the readings: acknowledge an episode, snooze a
 * kind until a time, or stop the sensor's session (a sensor change).
 */
export interface ActionInput {
  readonly _tag: "Action"
  readonly position: number
  readonly logTime: number
  /** The user who acted (absent: the state's user); another user's action changes nothing (see `onAction`). */
  readonly user_id?: UserId
  readonly action:
    | { readonly type: "acknowledge"; readonly alert_id: string; readonly by: UserId }
    | { readonly type: "snooze"; readonly alert_id: string; readonly kind: AlertType; readonly until: number }
    | { readonly type: "stop" }
    | { readonly type: "release" }
}

export type EngineInput = ReadingInput | TickInput | ActionInput

/**
 * What happened to an episode:
 * - `opened`: a new episode (notified when `ACTIVE`);
 * - `activated`: a `BACKFILLED` episode that a live reading found still in its condition (notified);
 * - `updated`: a reading inside the episode (extreme or last value);
 * - `resolved`: ended after two clear readings, the all clear (notified);
 * - `ended`: ended without an all clear (superseded, a silence, retirement, or never notified);
 * - `recorded`: an episode found only once it was over (a silence the sensor's next reading revealed);
 * - `repeated`: repeat n of an open episode, or an acknowledged urgent low's reminder;
 * - `released`: the first notification of an episode that quiet hours or a snooze held back, once they no longer do;
 * - `acknowledged`: the owner acknowledged the episode;
 * - `snoozed`: the owner snoozed the episode's kind;
 * - `silenced`: a notification the episode was due was not sent (its `silenced_by` says why).
 */
export type AlertChangeKind =
  | "opened"
  | "activated"
  | "updated"
  | "resolved"
  | "ended"
  | "recorded"
  | "repeated"
  | "released"
  | "acknowledged"
  | "snoozed"
  | "silenced"

export interface AlertChange {
  readonly kind: AlertChangeKind
  /** The episode's whole row after the change. */
  readonly alert: Alert
  /** Whether someone should be told (the delivery of a later issue consumes these). */
  readonly notify: boolean
  /** How many notifications the episode has had with this one (1 the first): what the person has been told. */
  readonly sequence: number
  /**
   * For a notification, which decision it is within its episode: `alert` (the
   * first), `repeat-<n>` (repeat n, due at start + n × the repeat interval),
   * `reminder-<acknowledged at>` or `all-clear`; empty otherwise. Unlike the
   * sequence, it does not depend on which earlier ticks happened to run (two
   * notifiers' clocks may both tick a sensor, or a tick may be given without a
   * position), so deciding again gives a decision the same key:
   * `(alert_id, decision)` is the notification's id.
   */
  readonly decision: string
}

export interface Decision {
  readonly state: SensorState
  readonly changes: ReadonlyArray<AlertChange>
}

/** The kinds a glucose value decides, `URGENT_LOW` first: it decides what the others may do. */
const valueKinds: ReadonlyArray<AlertType> = [
  "URGENT_LOW",
  "LOW",
  "HIGH",
  "URGENT_LOW_SOON",
  "FALLING_FAST",
  "RISING_FAST"
]
const highKinds: ReadonlySet<AlertType> = new Set(["HIGH", "RISING_FAST"])

/** The state being decided on: copies of the state's parts, changed in place, and the changes so far. */
interface Work {
  readonly base: SensorState
  readonly rules: AlertRulesShape
  position: number
  clock: number
  newest: SensorState["newest"]
  window: Array<WindowReading>
  open: Map<AlertType, OpenEpisode>
  retired: boolean
  snoozes: Array<{ readonly kind: AlertType; readonly until: number }>
  stopped: boolean
  settingsVersion: number
  /** The time of the input being decided: its log time, or the tick's time. */
  now: number
  readonly changes: Array<AlertChange>
}

const begin = (rules: AlertRulesShape, state: SensorState): Work => ({
  base: state,
  rules,
  position: state.position,
  clock: state.clock,
  newest: state.newest,
  window: [...state.window],
  open: new Map(state.open.map((episode) => [episode.kind, episode])),
  retired: state.retired,
  snoozes: [...state.snoozes],
  stopped: state.stopped,
  settingsVersion: state.settings_version,
  now: state.clock,
  changes: []
})

const finish = (work: Work): Decision => ({
  state: {
    sensor_id: work.base.sensor_id,
    user_id: work.base.user_id,
    position: work.position,
    clock: work.clock,
    newest: work.newest,
    window: work.window,
    open: valueKinds.concat("NO_DATA").flatMap((kind) => {
      const episode = work.open.get(kind)
      return episode === undefined ? [] : [episode]
    }),
    retired: work.retired,
    // A snooze that has run out is forgotten.
    snoozes: work.snoozes.filter((snooze) => snooze.until > work.now),
    stopped: work.stopped,
    settings_version: work.settingsVersion,
    handed_over: work.base.handed_over
  },
  changes: work.changes
})

/** An episode's id: see `deriveAlertId`; a handed-over sensor's ids also name the owner. */
const alertIdOf = (work: Work, keyTime: number, kind: AlertType) =>
  deriveAlertId(work.base.sensor_id, keyTime, kind, work.base.handed_over ? work.base.user_id : undefined)

const toAlert = (work: Work, episode: OpenEpisode, status: AlertStatus, endedAt: number | null): Alert =>
  new Alert({
    alert_id: episode.alert_id,
    user_id: work.base.user_id,
    sensor_id: work.base.sensor_id,
    alert_type: episode.kind,
    status,
    timestamp: episode.started_at,
    started_at: episode.started_at,
    ended_at: endedAt,
    glucose_value: episode.trigger_value,
    extreme_value: episode.extreme_value,
    last_value: episode.last_value,
    last_reading_at: episode.last_reading_at,
    acknowledged_at: episode.acknowledged_at,
    acknowledged_by: episode.acknowledged_by,
    snoozed_until: episode.snoozed_until,
    notification_count: episode.notifications,
    last_notified_at: episode.last_notified_at,
    silenced_by: episode.silenced_by
  })

const change = (work: Work, kind: AlertChangeKind, alert: Alert, notify: boolean, sequence = 0, decision = "") => {
  work.changes.push({ kind, alert, notify, sequence, decision })
}

/** Until when the owner snoozed this kind for the sensor, at the time being decided; null when not snoozed. */
const snoozedUntil = (work: Work, kind: AlertType): number | null => {
  const snooze = work.snoozes.find((s) => s.kind === kind && s.until > work.now)
  return snooze === undefined ? null : snooze.until
}

/** The kinds quiet hours never silence: signal loss at night can hide an urgent low. */
const heardInQuietHours: ReadonlySet<AlertType> = new Set(["URGENT_LOW", "URGENT_LOW_SOON", "NO_DATA"])

/** The owner's quiet period at the time being decided, if any. */
const quietPeriodNow = (work: Work) =>
  work.rules.quietHours === null ? undefined : quietPeriodAt(work.rules.quietHours, work.now)

/**
 * Why a notification of this kind due now would not go out, or null when it
 * goes out. A snooze never silences a new urgent low nor its all clear (on
 * `URGENT_LOW` it only delays repeats); quiet hours silence every kind but
 * the urgent ones.
 */
const silencer = (work: Work, kind: AlertType, what: "first" | "repeat" | "all clear"): SilencedBy | null => {
  if (snoozedUntil(work, kind) !== null && (kind !== "URGENT_LOW" || what === "repeat")) return "SNOOZED"
  if (!heardInQuietHours.has(kind) && quietPeriodNow(work) !== undefined) return "QUIET_HOURS"
  return null
}

/** The episode after one more notification at the time being decided. */
const notified = (work: Work, episode: OpenEpisode): OpenEpisode => ({
  ...episode,
  notifications: episode.notifications + 1,
  last_notified_at: work.now,
  silenced_by: null
})

/**
 * The episode after its first notification: the repeats already due by now
 * (it may be told later than it started: a reading some minutes late, a
 * backlog made live, a night's quiet hours) are passed, not sent at once.
 */
const toldFirst = (work: Work, episode: OpenEpisode): OpenEpisode => {
  const every = work.rules.repeat[episode.kind]
  const passed = every === undefined ? 0 : Math.floor((work.now - episode.started_at) / every)
  return notified(work, { ...episode, repeats: Math.max(episode.repeats, passed) })
}

/** An episode whose first notification quiet hours or a snooze held back: told once neither holds it. */
const isHeld = (episode: OpenEpisode) =>
  episode.status === "ACTIVE" &&
  episode.notifications === 0 &&
  (episode.silenced_by === "QUIET_HOURS" || episode.silenced_by === "SNOOZED")

/**
 * Whether the episode's condition is current enough to tell again: a reading
 * at most `repeatNeedsReadingWithin` old, still in the condition (repeats stop
 * when readings stop). `NO_DATA` is current as long as it is open.
 */
const isCurrent = (work: Work, episode: OpenEpisode) =>
  episode.kind === "NO_DATA" ||
  (work.newest !== null &&
    work.newest.t >= work.now - work.rules.repeatNeedsReadingWithin &&
    episode.clears.length === 0)

/** Keeps the episode, with a change row when why it was silenced changed. */
const setSilencedBy = (work: Work, episode: OpenEpisode, silencedBy: SilencedBy | null) => {
  const next = { ...episode, silenced_by: silencedBy }
  work.open.set(episode.kind, next)
  if (silencedBy !== episode.silenced_by) change(work, "silenced", toAlert(work, next, next.status, null), false)
  return next
}

/** What an episode holds before anything was done about it. */
const unnotified = {
  clears: [],
  notifications: 0,
  repeats: 0,
  last_notified_at: null,
  acknowledged_at: null,
  acknowledged_by: null,
  acknowledgement_holds: false,
  snoozed_until: null,
  silenced_by: null
} as const satisfies Partial<OpenEpisode>

const openEpisode = (
  work: Work,
  kind: AlertType,
  startedAt: number,
  keyTime: number,
  value: number,
  valueAt: number,
  live: boolean
) => {
  const fresh: OpenEpisode = {
    ...unnotified,
    alert_id: alertIdOf(work, keyTime, kind),
    kind,
    status: live ? "ACTIVE" : "BACKFILLED",
    started_at: startedAt,
    trigger_value: value,
    extreme_value: value,
    last_value: value,
    last_reading_at: valueAt,
    snoozed_until: snoozedUntil(work, kind),
    // A late episode is recorded, never told; a snoozed kind's or a quiet night's is held (see `releaseHeld`).
    silenced_by: live ? silencer(work, kind, "first") : "BACKFILLED"
  }
  const tell = fresh.silenced_by === null
  const episode = tell ? toldFirst(work, fresh) : fresh
  work.open.set(kind, episode)
  change(work, "opened", toAlert(work, episode, episode.status, null), tell, episode.notifications, tell ? "alert" : "")
}

/**
 * Ends an open episode: an all clear when it was notified, `silent` is not
 * asked for, and neither a snooze nor quiet hours silence it. `silencedBy`
 * says why a live episode ended silently (a sensor release), on its last row.
 */
const endEpisode = (work: Work, episode: OpenEpisode, at: number, silent: boolean, silencedBy?: SilencedBy) => {
  work.open.delete(episode.kind)
  const live = episode.status === "ACTIVE"
  // Only an episode someone was told about gets an all clear.
  const due = live && episode.notifications > 0 && !silent
  const heldBy = due ? silencer(work, episode.kind, "all clear") : null
  const allClear = due && heldBy === null
  const last = allClear
    ? notified(work, episode)
    : due
      ? { ...episode, silenced_by: heldBy }
      : live && silencedBy !== undefined
        ? { ...episode, silenced_by: silencedBy }
        : episode
  const alert = toAlert(work, last, live ? "RESOLVED" : "BACKFILLED", Math.max(at, episode.started_at))
  change(
    work,
    allClear ? "resolved" : "ended",
    alert,
    allClear,
    allClear ? last.notifications : 0,
    allClear ? "all-clear" : ""
  )
}

/** Every open episode ends, silently, when the sensor falls silent: nothing is known about the person any more. */
const endAllSilently = (work: Work, at: number, except?: AlertType, silencedBy?: SilencedBy) => {
  for (const episode of [...work.open.values()]) {
    if (episode.kind !== except) endEpisode(work, episode, at, true, silencedBy)
  }
}

/**
 * A `NO_DATA` episode found only once it was over (the notifier could not
 * tick in time, e.g. it was catching up): stored as a live run would have left
 * it, `RESOLVED` from its start to the reading that ended it, without notifying.
 */
const recordNoData = (
  work: Work,
  newest: NonNullable<SensorState["newest"]>,
  endedAt: number,
  rules: AlertRulesShape
) => {
  const startedAt = newest.t + rules.noData.after
  const episode: OpenEpisode = {
    ...unnotified,
    alert_id: alertIdOf(work, newest.t, "NO_DATA"),
    kind: "NO_DATA",
    status: "ACTIVE",
    started_at: startedAt,
    trigger_value: newest.v,
    extreme_value: newest.v,
    last_value: newest.v,
    last_reading_at: newest.t,
    // Nobody could be told in time: the notifier learnt of the silence only from the reading that ended it.
    silenced_by: "BACKFILLED"
  }
  change(work, "recorded", toAlert(work, episode, "RESOLVED", Math.max(endedAt, startedAt)), false)
}

const insertIntoWindow = (work: Work, reading: WindowReading, newestAt: number, rules: AlertRulesShape) => {
  const kept = work.window.filter((r) => r.t !== reading.t && r.t >= newestAt - rules.trendWindow)
  kept.push(reading)
  kept.sort((a, b) => a.t - b.t)
  work.window = kept.slice(-MAX_WINDOW_READINGS)
}

/** What the silence before a newer reading meant: a `NO_DATA` episode that ends now, or one found only now. */
const silenceBefore = (work: Work, rules: AlertRulesShape, timestamp: number, logTime: number) => {
  const newest = work.newest
  // A stopped sensor's silence was announced by its owner: nothing to find in it.
  if (newest === null || work.retired || work.stopped) return
  const noData = work.open.get("NO_DATA")
  if (noData !== undefined) {
    endEpisode(work, noData, Math.min(logTime, newest.t + rules.retireAfter), false)
    return
  }
  const silentFrom = newest.t + rules.noData.after
  // Live: the server heard nothing for too long. Any reading: the sensor's own data has a hole that long.
  const serverSilence = newest.live && logTime - newest.t > rules.noData.after
  const dataGap = timestamp - newest.t > rules.noData.after
  if (serverSilence || dataGap) endAllSilently(work, silentFrom)
  if (serverSilence && rules.noData.enabled) {
    recordNoData(work, newest, Math.min(logTime, newest.t + rules.retireAfter), rules)
  }
}

/** Whether the rules raise this kind at all (urgent low always; the others as the owner's settings switch them). */
const isEnabled = (rules: AlertRulesShape, kind: AlertType): boolean => {
  switch (kind) {
    case "URGENT_LOW":
      return true
    case "LOW":
      return rules.low.enabled
    case "HIGH":
      return rules.high.enabled
    case "URGENT_LOW_SOON":
      return rules.urgentLowSoon.enabled
    case "FALLING_FAST":
      return rules.fallingFast.enabled
    case "RISING_FAST":
      return rules.risingFast.enabled
    case "NO_DATA":
      return rules.noData.enabled
  }
}

/** Decides the episodes at the sensor's newest reading (a new one, or a new value for it). */
const evaluate = (work: Work, rules: AlertRulesShape, t: number, v: number, live: boolean) => {
  const trend = trendAt(work.window, t, rules.trendWindow, rules.trendMinReadings, rules.urgentLowSoon.horizon)
  const holds: Record<string, boolean> = {
    URGENT_LOW: v <= rules.urgentLowAt,
    LOW: rules.low.enabled && v < rules.low.below,
    HIGH: rules.high.enabled && v > rules.high.above,
    URGENT_LOW_SOON:
      rules.urgentLowSoon.enabled &&
      trend !== undefined &&
      trend.projected <= rules.urgentLowAt &&
      v > rules.urgentLowAt,
    FALLING_FAST: rules.fallingFast.enabled && trend !== undefined && trend.slope <= -rules.fallingFast.rate,
    RISING_FAST: rules.risingFast.enabled && trend !== undefined && trend.slope >= rules.risingFast.rate
  }
  let urgentEndedNow = false
  for (const kind of valueKinds) {
    const episode = work.open.get(kind)
    const urgentOpen = work.open.has("URGENT_LOW")
    if (episode === undefined) {
      // Nothing opens beside an urgent low: a first reading of 50 raises URGENT_LOW alone.
      const superseded = kind !== "URGENT_LOW" && (holds.URGENT_LOW || urgentOpen)
      if (holds[kind] && !superseded) openEpisode(work, kind, t, t, v, t, live)
      continue
    }
    if (!isEnabled(rules, kind)) {
      // The owner turned the kind off while it was open: it ends without an all clear, which would be false.
      endEpisode(work, episode, t, true)
      continue
    }
    if (kind === "URGENT_LOW_SOON" && holds.URGENT_LOW) {
      // The prediction came true: the urgent low takes over, without an all clear.
      endEpisode(work, episode, t, true)
      continue
    }
    const extreme = highKinds.has(kind) ? Math.max(episode.extreme_value, v) : Math.min(episode.extreme_value, v)
    if (holds[kind]) {
      const updated: OpenEpisode = {
        ...episode,
        status: live ? "ACTIVE" : episode.status,
        extreme_value: extreme,
        last_value: v,
        last_reading_at: t,
        clears: []
      }
      const activated = episode.status === "BACKFILLED" && updated.status === "ACTIVE"
      const silencedBy = activated ? silencer(work, kind, "first") : updated.silenced_by
      const tell = activated && silencedBy === null
      const next = tell ? toldFirst(work, updated) : { ...updated, silenced_by: silencedBy }
      work.open.set(kind, next)
      change(
        work,
        activated ? "activated" : "updated",
        toAlert(work, next, next.status, null),
        tell,
        tell ? next.notifications : 0,
        tell ? "alert" : ""
      )
      continue
    }
    const next: OpenEpisode = {
      ...episode,
      last_value: v,
      last_reading_at: t,
      clears: episode.clears.includes(t) ? episode.clears : [...episode.clears, t]
    }
    if (next.clears.length >= rules.clearReadings) {
      // No all clear while the person is still low: an urgent low that recovers into a low hands over to
      // LOW (opened below if it was not yet), and an urgent low's all clear speaks for LOW too.
      const handsOverToLow = kind === "URGENT_LOW" && holds.LOW
      endEpisode(work, next, t, handsOverToLow || (kind === "LOW" && (urgentOpen || urgentEndedNow)))
      if (kind === "URGENT_LOW") urgentEndedNow = true
    } else {
      work.open.set(kind, next)
      change(work, "updated", toAlert(work, next, next.status, null), false)
    }
  }
}

/** Starts deciding a record of the log: the state then covers its position, and its log time is the time. */
const beginRecord = (rules: AlertRulesShape, state: SensorState, input: ReadingInput | ActionInput): Work => {
  const work = begin(rules, state)
  work.position = input.position
  work.clock = Math.max(work.clock, input.logTime)
  work.now = input.logTime
  return work
}

const onReading = (rules: AlertRulesShape, state: SensorState, input: ReadingInput): Decision => {
  // At or before the position the state covers: a redelivery, already decided.
  if (input.position <= state.position) return { state, changes: [] }
  const work = beginRecord(rules, state, input)
  work.settingsVersion = Math.max(work.settingsVersion, input.settingsVersion ?? 0)
  const { event } = input
  // Finger-sticks are stored and shown, but alerts follow the sensor alone (as Dexcom's and Nightscout's do).
  if (event.source !== "SENSOR") return finish(work)
  const t = event.timestamp
  const v = event.glucose_value
  const live = input.logTime - t <= rules.liveWindow

  const sameInstant = work.window.findIndex((r) => r.t === t)
  if (sameInstant >= 0) {
    // The conflict rule between two SENSOR values at one instant: the newer event's value stands.
    const stored = work.window[sameInstant]!
    if (event.event_id <= stored.e) return finish(work)
    work.window[sameInstant] = { t, v, e: event.event_id }
    if (stored.v !== v && work.newest !== null && work.newest.t === t) {
      work.newest = { t, v, live: work.newest.live || live }
      evaluate(work, rules, t, v, live)
      if (live) releaseHeld(work)
    }
    return finish(work)
  }
  if (work.newest !== null && t < work.newest.t) {
    // An older reading: kept for the trend, but it never opens, splits or merges an episode.
    if (t >= work.newest.t - rules.trendWindow)
      insertIntoWindow(work, { t, v, e: event.event_id }, work.newest.t, rules)
    return finish(work)
  }
  silenceBefore(work, rules, t, input.logTime)
  work.retired = false
  work.stopped = false
  work.newest = { t, v, live }
  insertIntoWindow(work, { t, v, e: event.event_id }, t, rules)
  evaluate(work, rules, t, v, live)
  if (live) releaseHeld(work)
  return finish(work)
}

const onTick = (rules: AlertRulesShape, state: SensorState, input: TickInput): Decision => {
  const newest = state.newest
  if (input.position !== undefined && input.position <= state.position) return { state, changes: [] }
  if (state.retired || state.stopped || newest === null) return { state, changes: [] }
  const work = begin(rules, state)
  if (input.position !== undefined) work.position = input.position
  const now = Math.max(work.clock, input.now)
  work.clock = now
  work.now = now
  const silentFrom = newest.t + rules.noData.after
  if (now - newest.t >= rules.retireAfter) {
    const retiredAt = newest.t + rules.retireAfter
    const noData = work.open.get("NO_DATA")
    if (noData !== undefined) endEpisode(work, noData, retiredAt, true)
    else if (newest.live && rules.noData.enabled) recordNoData(work, newest, retiredAt, rules)
    endAllSilently(work, silentFrom)
    work.retired = true
  } else if (newest.live && now - newest.t > rules.noData.after) {
    // Only a live sensor's silence is news; a backlog's holes are judged by its next reading.
    endAllSilently(work, silentFrom, "NO_DATA")
    if (rules.noData.enabled && !work.open.has("NO_DATA")) {
      openEpisode(work, "NO_DATA", silentFrom, newest.t, newest.v, newest.t, true)
    }
  }
  releaseHeld(work)
  repeatDue(work, rules, now)
  return finish(work)
}

/**
 * Tells the held episodes (see `isHeld`) that nothing holds any more: quiet
 * hours ended or the snooze ran out while the episode is still open and
 * current. Its repeats go on from there; the ones that fell due while it was
 * held are not caught up.
 */
const releaseHeld = (work: Work) => {
  for (const episode of [...work.open.values()]) {
    if (!isHeld(episode) || !isCurrent(work, episode)) continue
    const silencedBy = silencer(work, episode.kind, "first")
    if (silencedBy !== null) {
      setSilencedBy(work, episode, silencedBy)
      continue
    }
    const next = toldFirst(work, episode)
    work.open.set(episode.kind, next)
    change(work, "released", toAlert(work, next, next.status, null), true, next.notifications, "alert")
  }
}

/**
 * Repeats of the open, told episodes whose next repeat is due: repeat n at
 * `started_at + n × repeat`, only while the newest reading is fresh and still
 * in the condition (repeats stop when readings stop), never while the kind is
 * snoozed or the episode acknowledged. An acknowledged urgent low still at or
 * below its threshold `urgentLowReminderAfter` later is told again, and its
 * repeats go on. A repeat that is due but not sent is skipped, not caught up.
 */
const repeatDue = (work: Work, rules: AlertRulesShape, now: number) => {
  for (const episode of [...work.open.values()]) {
    // Only a told episode repeats: a held one is told first by `releaseHeld`.
    if (episode.status !== "ACTIVE" || episode.notifications === 0) continue
    const every = rules.repeat[episode.kind]
    const due = every === undefined ? episode.repeats : Math.floor((now - episode.started_at) / every)
    const reminderAt = reminderTime(rules, episode)
    const reminder = reminderAt !== null && now >= reminderAt && episode.last_value <= rules.urgentLowAt
    if (due <= episode.repeats && !reminder) continue
    const skipped = { ...episode, repeats: Math.max(episode.repeats, due) }
    if (!isCurrent(work, episode)) {
      work.open.set(episode.kind, skipped)
      continue
    }
    const silencedBy =
      episode.acknowledgement_holds && !reminder ? "ACKNOWLEDGED" : silencer(work, episode.kind, "repeat")
    if (silencedBy !== null) {
      setSilencedBy(work, skipped, silencedBy)
      continue
    }
    // The reminder lifts the acknowledgement: the repeats go on until it is acknowledged again.
    const next = notified(work, { ...skipped, acknowledgement_holds: false })
    work.open.set(episode.kind, next)
    const decision = reminder ? `reminder-${episode.acknowledged_at}` : `repeat-${due}`
    change(work, "repeated", toAlert(work, next, next.status, null), true, next.notifications, decision)
  }
}

/** When an acknowledged urgent low is told again if still at or below its threshold; null for any other episode. */
const reminderTime = (rules: AlertRulesShape, episode: OpenEpisode): number | null =>
  episode.kind === "URGENT_LOW" && episode.acknowledgement_holds && episode.acknowledged_at !== null
    ? episode.acknowledged_at + rules.urgentLowReminderAfter
    : null

/**
 * The owner's actions; like readings, one at or before the state's position
 * is a redelivery. An action of another user than the state's is a former
 * owner's, decided before the sensor changed hands and appended after it (the
 * gateway checks and appends in two steps): it passes without touching the
 * new owner's episodes. Only a reading hands a sensor over.
 */
const onAction = (rules: AlertRulesShape, state: SensorState, input: ActionInput): Decision => {
  if (input.position <= state.position) return { state, changes: [] }
  const work = beginRecord(rules, state, input)
  const { action } = input
  if (input.user_id !== undefined && input.user_id !== state.user_id) return finish(work)
  switch (action.type) {
    case "acknowledge": {
      // An episode that has ended is past acknowledging: the action is accepted and changes nothing.
      const episode = [...work.open.values()].find((e) => e.alert_id === action.alert_id)
      if (episode !== undefined && !episode.acknowledgement_holds) {
        const next = {
          ...episode,
          acknowledged_at: input.logTime,
          acknowledged_by: action.by,
          acknowledgement_holds: true
        }
        work.open.set(episode.kind, next)
        change(work, "acknowledged", toAlert(work, next, next.status, null), false)
      }
      break
    }
    case "snooze": {
      // The kind is snoozed for the sensor, across episodes, whichever episode the owner snoozed it from.
      work.snoozes = [
        ...work.snoozes.filter((snooze) => snooze.kind !== action.kind),
        { kind: action.kind, until: action.until }
      ]
      const episode = work.open.get(action.kind)
      if (episode !== undefined) {
        const next = { ...episode, snoozed_until: action.until }
        work.open.set(episode.kind, next)
        change(work, "snoozed", toAlert(work, next, next.status, null), false)
      }
      break
    }
    case "stop":
      // A sensor change: what was open ends without an all clear, and its silence is no news.
      endAllSilently(work, input.logTime)
      work.stopped = true
      break
    case "release":
      // The owner gave the sensor up: what was open ends here, marked, without an all clear (nothing is known
      // about the owner's glucose any more), and like a stopped sensor it raises no NO_DATA; the owner's next
      // reading, were it still theirs, takes it up again.
      endAllSilently(work, input.logTime, undefined, "SENSOR_RELEASED")
      work.stopped = true
      break
  }
  return finish(work)
}

/**
 * A reading of another user than the state's: the sensor changed hands (its
 * owner released it and the reading's user claimed it). The former owner's
 * open episodes end at the reading's log time as a release ends them, and the
 * reading starts a fresh state for its user: nothing of the former owner's
 * (trend window, snoozes, settings version, newest reading) judges it. Both
 * come from the one input at one position, so deciding it again after a crash
 * gives the same rows, and a redelivery changes nothing.
 */
const handOver = (rules: AlertRulesShape, state: SensorState, input: ReadingInput, userId: UserId): Decision => {
  const work = beginRecord(rules, state, input)
  endAllSilently(work, input.logTime, undefined, "SENSOR_RELEASED")
  const ended = finish(work).changes
  const fresh: SensorState = {
    ...initialSensorState(state.sensor_id, userId),
    position: state.position,
    clock: state.clock,
    handed_over: true
  }
  const next = onReading(rules, fresh, input)
  return { state: next.state, changes: [...ended, ...next.changes] }
}

/**
 * The alert engine: a pure function from a sensor's state and one input to
 * its next state and the episode changes. It depends on nothing but its
 * arguments, so a replay of the log decides exactly as the first run did.
 */
export const decide = (rules: AlertRulesShape, state: SensorState, input: EngineInput): Decision => {
  switch (input._tag) {
    case "Reading":
      // The rules are the reading's user's: on a hand-over they judge the new owner's reading, and the
      // former owner's episodes end silently, which no rule decides.
      return input.user_id !== undefined && input.user_id !== state.user_id && input.position > state.position
        ? handOver(rules, state, input, input.user_id)
        : onReading(rules, state, input)
    case "Tick":
      return onTick(rules, state, input)
    case "Action":
      return onAction(rules, state, input)
  }
}

/**
 * When the sensor next needs a tick (epoch ms), or null when it never does:
 * just past the `NO_DATA` threshold while that can still open or episodes can
 * still end by silence, then at retirement.
 */
export const nextCheckAt = (rules: AlertRulesShape, state: SensorState): number | null => {
  const newest = state.newest
  if (state.retired || state.stopped || newest === null) return null
  const noDataOpen = state.open.some((episode) => episode.kind === "NO_DATA")
  const silenceMatters = newest.live && (state.open.length > 0 || rules.noData.enabled)
  const silence = !noDataOpen && silenceMatters ? newest.t + rules.noData.after + 1 : newest.t + rules.retireAfter
  const repeats = state.open.flatMap((episode) => {
    // Held episodes are not repeated before they are told: `heldUntil` says when that can be.
    if (episode.status !== "ACTIVE" || episode.notifications === 0) return []
    const every = rules.repeat[episode.kind]
    const reminderAt = reminderTime(rules, episode)
    return [
      // While acknowledged, the due repeats are passed over one by one, so silenced_by shows why.
      ...(every === undefined ? [] : [episode.started_at + (episode.repeats + 1) * every]),
      // The reminder is checked once at its time; after it, only the repeats bring ticks.
      ...(reminderAt !== null && reminderAt > state.clock ? [reminderAt] : [])
    ]
  })
  return Math.min(silence, ...repeats, ...heldUntil(rules, state))
}

/**
 * When the held episodes may be told: when the snooze of their kind runs out
 * or the quiet period ends, whichever is later. A held episode nothing holds
 * any more waits for a current reading, which releases it.
 */
const heldUntil = (rules: AlertRulesShape, state: SensorState): ReadonlyArray<number> => {
  const quiet = rules.quietHours === null ? undefined : quietPeriodAt(rules.quietHours, state.clock)
  return state.open.flatMap((episode) => {
    if (!isHeld(episode)) return []
    const snoozedTo = Math.max(
      0,
      ...state.snoozes.filter((s) => s.kind === episode.kind && s.until > state.clock).map((s) => s.until)
    )
    const quietTo = quiet !== undefined && !heardInQuietHours.has(episode.kind) ? quiet.end : 0
    const until = Math.max(snoozedTo, quietTo)
    return until > state.clock ? [until] : []
  })
}
