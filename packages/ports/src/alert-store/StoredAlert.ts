import {
  Alert,
  AlertId,
  type AlertStatus,
  formatIsoTimestamp,
  InvalidCursor,
  legacyAlertFields,
  unnotifiedAlertFields
} from "@dexmon/domain"
import { Effect, Schema } from "effect"
import { decodeCursor, encodeCursor } from "../Cursor.ts"

/** The status every alert row had before episodes existed: one row per low or high reading, sent. */
export const LEGACY_STATUS = "SENT"

/**
 * An alert row as any alert store holds it, times in epoch milliseconds; rows
 * written before episodes lack their columns, rows written before
 * notifications lack theirs (`notification_count` included).
 */
export interface StoredAlertRow {
  readonly alert_id: string
  readonly user_id: string
  readonly sensor_id: string
  readonly alert_type: string
  readonly status: string
  readonly timestamp: number
  readonly glucose_value: number
  readonly started_at: number | null
  readonly ended_at: number | null
  readonly extreme_value: number | null
  readonly last_value: number | null
  readonly last_reading_at: number | null
  readonly acknowledged_at: number | null
  readonly acknowledged_by: string | null
  readonly snoozed_until: number | null
  readonly notification_count: number | null
  readonly last_notified_at: number | null
  readonly silenced_by: string | null
}

const isoOrNull = (millis: number | null) => (millis === null ? null : formatIsoTimestamp(millis))

/**
 * An alert row as an episode. A row written before episodes existed (status
 * `SENT`, no episode columns) reads back as an ended episode of its one reading;
 * one written before notifications were recorded (those columns empty) reads
 * back as `unnotifiedAlertFields`: nothing acknowledged, snoozed or sent.
 */
export const decodeStoredAlert = (row: StoredAlertRow) => {
  const legacy =
    row.status === LEGACY_STATUS ||
    row.started_at === null ||
    row.extreme_value === null ||
    row.last_value === null ||
    row.last_reading_at === null
  const episode = legacy
    ? legacyAlertFields(row.timestamp, row.glucose_value)
    : {
        status: row.status,
        started_at: row.started_at!,
        ended_at: row.ended_at,
        extreme_value: row.extreme_value!,
        last_value: row.last_value!,
        last_reading_at: row.last_reading_at!
      }
  return Schema.decodeUnknownEffect(Alert)({
    alert_id: row.alert_id,
    user_id: row.user_id,
    sensor_id: row.sensor_id,
    alert_type: row.alert_type,
    status: episode.status,
    timestamp: formatIsoTimestamp(row.timestamp),
    started_at: formatIsoTimestamp(episode.started_at),
    ended_at: episode.ended_at === null ? null : formatIsoTimestamp(episode.ended_at),
    glucose_value: row.glucose_value,
    extreme_value: episode.extreme_value,
    last_value: episode.last_value,
    last_reading_at: formatIsoTimestamp(episode.last_reading_at),
    acknowledged_at: isoOrNull(row.acknowledged_at),
    acknowledged_by: row.acknowledged_by,
    snoozed_until: isoOrNull(row.snoozed_until),
    notification_count: row.notification_count ?? unnotifiedAlertFields.notification_count,
    last_notified_at: isoOrNull(row.last_notified_at),
    silenced_by: row.silenced_by
  })
}

/** The stored statuses a status filter matches: rows written before episodes read back as `RESOLVED`. */
export const storedStatuses = (status: AlertStatus): ReadonlyArray<string> =>
  status === "RESOLVED" ? ["RESOLVED", LEGACY_STATUS] : [status]

/**
 * One version of each episode of a batch, the last one given: a batch may carry
 * an episode as it opened and as it changed later, and only the later stands.
 */
export const latestPerEpisode = (alerts: ReadonlyArray<Alert>): ReadonlyArray<Alert> => [
  ...new Map(alerts.map((alert) => [alert.alert_id, alert])).values()
]

/** The order of a user's episodes in every alert store: newest start first, then alert id, descending. */
export const newestFirst = (a: Alert, b: Alert): number =>
  a.timestamp !== b.timestamp
    ? b.timestamp - a.timestamp
    : a.alert_id < b.alert_id
      ? 1
      : a.alert_id > b.alert_id
        ? -1
        : 0

/** A page's cursor: the sort key (start, alert id) of its last episode. */
export const encodeAlertCursor = (alert: Alert): string => encodeCursor([alert.timestamp, alert.alert_id])

export const decodeAlertCursor = (cursor: string) =>
  decodeCursor(cursor, ["number", "string"]).pipe(
    Effect.flatMap(([timestamp, alertId]) =>
      Number.isSafeInteger(timestamp) && Schema.is(AlertId)(alertId)
        ? Effect.succeed({ timestamp, alert_id: alertId })
        : Effect.fail(new InvalidCursor({ message: "cursor is not one this server issued" }))
    )
  )
