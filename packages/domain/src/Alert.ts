import { createHash } from "node:crypto"
import { Schema } from "effect"
import { GlucoseValue } from "./GlucoseEvent.ts"
import { AlertId, SensorId, UserId } from "./Identifiers.ts"
import { IsoTimestamp } from "./Timestamp.ts"

/**
 * The kinds of alert, as a CGM app names them. `URGENT_LOW` supersedes the
 * others; `NO_DATA` is raised by silence, not by a value.
 */
export const AlertType = Schema.Literals([
  "URGENT_LOW",
  "LOW",
  "HIGH",
  "URGENT_LOW_SOON",
  "FALLING_FAST",
  "RISING_FAST",
  "NO_DATA"
])
export type AlertType = typeof AlertType.Type
export const alertTypes: ReadonlyArray<AlertType> = AlertType.literals

/**
 * Where an episode stands: `ACTIVE` (open and notified), `RESOLVED` (ended
 * after it was notified, or ended silently), `BACKFILLED` (opened by readings
 * that reached the log too late to matter: listed, never notified; it keeps
 * this status when it ends).
 */
export const AlertStatus = Schema.Literals(["ACTIVE", "RESOLVED", "BACKFILLED"])
export type AlertStatus = typeof AlertStatus.Type

/**
 * Why the last notification an episode was due did not go out: it was late
 * (`BACKFILLED`), its kind was snoozed (`SNOOZED`), it fell in the owner's
 * quiet hours (`QUIET_HOURS`), the owner had acknowledged it
 * (`ACKNOWLEDGED`), or the owner gave the sensor up (`SENSOR_RELEASED`: the
 * episode ended at the release, or at the next owner's first reading, and its
 * all clear would be false). `null` when the last one due was sent.
 */
export const SilencedBy = Schema.Literals(["BACKFILLED", "SNOOZED", "QUIET_HOURS", "ACKNOWLEDGED", "SENSOR_RELEASED"])
export type SilencedBy = typeof SilencedBy.Type

/**
 * One alert episode: from the reading (or the silence) that opened it to the
 * second clear reading that ended it. `timestamp` is the episode's start (the
 * seed's clustering column, kept so older clients read on); `glucose_value` is
 * the value that opened it, `extreme_value` the lowest (low kinds) or highest
 * (the others) value while it was open. For `NO_DATA` both are the last value
 * before the silence.
 *
 * The rest says what was done about it: when and by whom it was acknowledged,
 * until when its kind is snoozed, how many notifications went out (the first,
 * repeats, the all clear) and when the last did, and why the last one due did
 * not (`silenced_by`).
 */
export class Alert extends Schema.Class<Alert>("dexmon/domain/Alert")({
  alert_id: AlertId,
  user_id: UserId,
  sensor_id: SensorId,
  alert_type: AlertType,
  status: AlertStatus,
  timestamp: IsoTimestamp,
  started_at: IsoTimestamp,
  ended_at: Schema.NullOr(IsoTimestamp),
  glucose_value: GlucoseValue,
  extreme_value: GlucoseValue,
  last_value: GlucoseValue,
  last_reading_at: IsoTimestamp,
  acknowledged_at: Schema.NullOr(IsoTimestamp),
  acknowledged_by: Schema.NullOr(UserId),
  snoozed_until: Schema.NullOr(IsoTimestamp),
  notification_count: Schema.Int,
  last_notified_at: Schema.NullOr(IsoTimestamp),
  silenced_by: Schema.NullOr(SilencedBy)
}) {}

/** What an episode's row shows before anyone acted on it or was told about it (and what rows written before these fields read back as). */
export const unnotifiedAlertFields = {
  acknowledged_at: null,
  acknowledged_by: null,
  snoozed_until: null,
  notification_count: 0,
  last_notified_at: null,
  silenced_by: null
} as const

/**
 * The alert id is a UUID (version 8, name-based on SHA-256) of
 * `(sensor_id, key, type)`, where the key is the episode's start (or, for
 * `NO_DATA`, the timestamp of the last reading before the silence): a replayed
 * or redelivered event produces the same id, so every alert store writes it
 * idempotently and a replay can never raise a second alert. A sensor that
 * changed hands names its new owner too (`owner`): the new owner's episodes
 * never take an id of the old owner's, even at the same instants (a device's
 * history posted again).
 */
export const deriveAlertId = (sensorId: string, timestamp: number, type: AlertType, owner?: string): AlertId => {
  const key = `${sensorId}\u0000${timestamp}\u0000${type}`
  const hex = createHash("sha256")
    .update(owner === undefined ? key : `${key}\u0000${owner}`)
    .digest("hex")
  const variant = ((Number.parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16)
  return AlertId.make(
    `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`
  )
}

/**
 * How an alert row written before episodes existed (status `SENT`, one row per
 * low or high reading) reads back: an episode of that one reading, over.
 */
export const legacyAlertFields = (timestamp: number, glucoseValue: number) => ({
  status: "RESOLVED" as const,
  started_at: timestamp,
  ended_at: timestamp,
  extreme_value: glucoseValue,
  last_value: glucoseValue,
  last_reading_at: timestamp
})
