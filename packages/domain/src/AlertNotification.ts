import { Schema } from "effect"
import { Alert } from "./Alert.ts"
import { AlertId, SensorId, UserId } from "./Identifiers.ts"
import { IsoTimestamp } from "./Timestamp.ts"
import { fromUtf8 } from "./Utf8Json.ts"

/** What a notification says: an episode began (or was first told), it is still going on, or it is over. */
export const NotificationType = Schema.Literals(["alert", "repeat", "all_clear"])
export type NotificationType = typeof NotificationType.Type

/**
 * One notification the alert engine decided, as it travels on `glucose.alerts`
 * keyed by the sensor. `notification_id` is the decision's key,
 * `<alert_id>/<decision>` with the decision `alert` (the episode's first),
 * `repeat-<n>` (repeat n, due at its start + n × the repeat interval),
 * `reminder-<acknowledged at>` or `all-clear`: the notifier appends each
 * decision at least once, deciding again after a crash gives it the same key,
 * and every consumer applies each key once. `sequence` is how many
 * notifications the episode had with this one (1 the first); it says what the
 * person has been told, but is no key: the clock's ticks are not in the log, so
 * a repeat decided before a crash may not be decided again after it. `alert`
 * is the episode's row as the decision left it.
 */
export class AlertNotification extends Schema.Class<AlertNotification>("dexmon/domain/AlertNotification")({
  schema: Schema.Literal("alert-notification"),
  schema_version: Schema.Literal(1),
  notification_id: Schema.String,
  alert_id: AlertId,
  sequence: Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)),
  type: NotificationType,
  sensor_id: SensorId,
  user_id: UserId,
  decided_at: IsoTimestamp,
  alert: Alert
}) {}

/** The key of a notification decision: the same on every append of it. */
export const notificationId = (alertId: string, decision: string) => `${alertId}/${decision}`

export const AlertNotificationJson = Schema.fromJsonString(AlertNotification)
export const encodeAlertNotification = Schema.encodeSync(AlertNotificationJson)
export const decodeAlertNotification = Schema.decodeUnknownEffect(AlertNotificationJson)
/** A `glucose.alerts` message value; bytes that are not UTF-8 fail like any other bad value. */
export const decodeAlertNotificationBytes = fromUtf8(decodeAlertNotification)

/** The message headers that describe a notification without parsing it. */
export const alertNotificationHeaders = (notification: AlertNotification): Record<string, string> => ({
  "content-type": "application/json",
  "dexmon-schema": notification.schema,
  "dexmon-schema-version": String(notification.schema_version),
  "dexmon-notification-id": notification.notification_id
})
