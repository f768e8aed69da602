import { Schema } from "effect"
import { GlucoseValue } from "./GlucoseEvent.ts"
import { type EventId, SensorId, UserId } from "./Identifiers.ts"
import { Source } from "./Source.ts"
import { IsoTimestamp } from "./Timestamp.ts"

/** A stored reading as the gateway serves it: one row per `(sensor_id, timestamp)`. */
export class Reading extends Schema.Class<Reading>("dexmon/domain/Reading")({
  id: Schema.String,
  sensor_id: SensorId,
  user_id: UserId,
  timestamp: IsoTimestamp,
  glucose_value: GlucoseValue,
  source: Source,
  version: Schema.Int,
  etag: Schema.String,
  created_at: IsoTimestamp,
  updated_at: IsoTimestamp
}) {}

/** What the conflict rule compares: the content of a reading and the event that wrote it. */
export interface ReadingState {
  readonly sensor_id: SensorId
  readonly timestamp: number
  readonly glucose_value: number
  readonly source: Source
  readonly event_id: EventId
  readonly version: number
}

/** The part of an event that can change a reading. */
export interface ReadingCandidate {
  readonly sensor_id: SensorId
  readonly user_id: UserId
  readonly timestamp: number
  readonly glucose_value: number
  readonly source: Source
  readonly event_id: EventId
}
