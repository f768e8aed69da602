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

/**
 * The third message type on `glucose.events`: the notifier's clock, for one
 * sensor whose next check (`NO_DATA`, a repeat, a held alert's release,
 * retirement) has come. Keyed by the sensor, it is decided in order with the
 * sensor's readings and actions, at a log position like them, so every
 * notifier that decides the partition (a new owner, one that still believes
 * it owns it) decides the tick the same way, and a state decided from a later
 * record always includes it. The processor and the live feed pass over it.
 */
export class AlertClockEvent extends Schema.Class<AlertClockEvent>("dexmon/domain/AlertClockEvent")({
  schema: Schema.Literal("alert-clock"),
  schema_version: Schema.Literal(1),
  sensor_id: SensorId,
  /** The notifier's clock when it found the sensor due (epoch ms): the tick's time. */
  tick_at: Schema.Number
}) {}

/** Every message `glucose.events` carries: a reading's event (no `schema` field, as since version 1), an action or a clock tick. */
export const EventsTopicMessage = Schema.fromJsonString(Schema.Union([GlucoseEvent, AlertActionEvent, AlertClockEvent]))
export type EventsTopicMessage = GlucoseEvent | AlertActionEvent | AlertClockEvent

export const encodeAlertActionEvent = Schema.encodeSync(Schema.fromJsonString(AlertActionEvent))
export const encodeAlertClockEvent = Schema.encodeSync(Schema.fromJsonString(AlertClockEvent))

/**
 * Decodes a `glucose.events` message value (what the processor and the
 * notifier read); bytes that are no reading's event, action or clock tick of
 * a known version, or not UTF-8 at all, fail with a SchemaError, for the DLQ.
 */
export const decodeEventsTopicBytes = fromUtf8(Schema.decodeUnknownEffect(EventsTopicMessage))

/** The message headers that describe an action without parsing it. */
export const alertActionHeaders = (event: AlertActionEvent): Record<string, string> => ({
  "content-type": "application/json",
  "dexmon-schema": event.schema,
  "dexmon-schema-version": String(event.schema_version),
  "dexmon-event-id": event.action_id
})

/** The message headers that describe a clock tick without parsing it. */
export const alertClockHeaders = (event: AlertClockEvent): Record<string, string> => ({
  "content-type": "application/json",
  "dexmon-schema": event.schema,
  "dexmon-schema-version": String(event.schema_version)
})
