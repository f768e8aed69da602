import { Schema } from "effect"
import { AlertType } from "./Alert.ts"
import { GlucoseEvent } from "./GlucoseEvent.ts"
import { AlertId, EventId, SensorId, UserId } from "./Identifiers.ts"
import { IsoTimestamp } from "./Timestamp.ts"
import { fromUtf8 } from "./Utf8Json.ts"

/**
 * What the sensor's owner asked for: acknowledge an episode, snooze a kind until a time, stop the
 * sensor, or release it (the owner gave it up, `DELETE /api/v1/sensors/{id}/owner`: the owner's
 * alerting on it ends there, in order with the readings).
 */
export const AlertActionRequest = Schema.Union([
  Schema.Struct({ type: Schema.Literal("acknowledge"), alert_id: AlertId }),
  Schema.Struct({ type: Schema.Literal("snooze"), alert_id: AlertId, kind: AlertType, until: IsoTimestamp }),
  Schema.Struct({ type: Schema.Literal("stop") }),
  Schema.Struct({ type: Schema.Literal("release") })
])
export type AlertActionRequest = typeof AlertActionRequest.Type

/**
 * The second message type on `glucose.events`, keyed by the sensor like its
 * readings, so an action is ordered with them through crashes and
 * rebalances. The notifier applies it; the processor passes over it.
 */
export class AlertActionEvent extends Schema.Class<AlertActionEvent>("dexmon/domain/AlertActionEvent")({
  schema: Schema.Literal("alert-action"),
  schema_version: Schema.Literal(1),
  action_id: EventId,
  sensor_id: SensorId,
  user_id: UserId,
  action: AlertActionRequest,
  requested_at: IsoTimestamp
}) {}

/** Every message `glucose.events` carries: a reading's event (no `schema` field, as since version 1) or an action. */
export const EventsTopicMessage = Schema.fromJsonString(Schema.Union([GlucoseEvent, AlertActionEvent]))
export type EventsTopicMessage = GlucoseEvent | AlertActionEvent

export const encodeAlertActionEvent = Schema.encodeSync(Schema.fromJsonString(AlertActionEvent))

/**
 * Decodes a `glucose.events` message value (what the processor and the
 * notifier read); bytes that are neither a reading's event nor an action of a
 * known version, or not UTF-8 at all, fail with a SchemaError, for the DLQ.
 */
export const decodeEventsTopicBytes = fromUtf8(Schema.decodeUnknownEffect(EventsTopicMessage))

/** The message headers that describe an action without parsing it. */
export const alertActionHeaders = (event: AlertActionEvent): Record<string, string> => ({
  "content-type": "application/json",
  "dexmon-schema": event.schema,
  "dexmon-schema-version": String(event.schema_version),
  "dexmon-event-id": event.action_id
})
