import { Schema } from "effect"
import { EventId, SensorId, UserId } from "./Identifiers.ts"
import { SensorLimit, Source } from "./Source.ts"
import { IsoTimestamp } from "./Timestamp.ts"

/** Lowest and highest glucose value a meter can report, in mg/dL. */
export const GlucoseValue = Schema.Finite.check(
  Schema.isBetween({ minimum: 20, maximum: 600 }, { message: "must be a number from 20 to 600 (mg/dL)" })
)

/**
 * The value of a message on `glucose.events`, version 1. The receiver writes it
 * once, the processor and the notifier read it; `schema_version` lets a
 * consumer recognise a future version instead of misreading it.
 *
 * Field names are snake_case, as in the tables and the HTTP API.
 */
export class GlucoseEvent extends Schema.Class<GlucoseEvent>("dexmon/domain/GlucoseEvent")({
  schema_version: Schema.Literal(1),
  event_id: EventId,
  sensor_id: SensorId,
  user_id: UserId,
  timestamp: IsoTimestamp,
  glucose_value: GlucoseValue,
  source: Source,
  received_at: IsoTimestamp,
  /**
   * The owner's alert-settings version when the receiver accepted the reading
   * (absent or 0: the deployment's rules), so every notifier, and every
   * replay, judges it by the settings that stood when it was posted.
   */
  settings_version: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))),
  /** Present only on a reading at the sensor's range (`LO`, `HI`); consumers of an older release ignore it. */
  sensor_limit: Schema.optionalKey(SensorLimit)
}) {}

/** JSON text of an event, as it travels in a Kafka message value. */
export const GlucoseEventJson = Schema.fromJsonString(GlucoseEvent)

export const encodeGlucoseEvent = Schema.encodeSync(GlucoseEventJson)
export const decodeGlucoseEvent = Schema.decodeUnknownEffect(GlucoseEventJson)

/** The message headers that describe an event without parsing it. */
export const eventHeaders = (event: GlucoseEvent): Record<string, string> => ({
  "content-type": "application/json",
  "dexmon-schema": "glucose-event",
  "dexmon-schema-version": String(event.schema_version),
  "dexmon-event-id": event.event_id
})
