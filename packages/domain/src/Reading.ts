import { Schema } from "effect"
import { GlucoseValue } from "./GlucoseEvent.ts"
import { type EventId, SensorId, UserId } from "./Identifiers.ts"
import { SensorLimit, Source } from "./Source.ts"
import { IsoTimestamp } from "./Timestamp.ts"

/** A stored reading as the gateway serves it: one row per `(sensor_id, timestamp)`. */
export class Reading extends Schema.Class<Reading>("dexmon/domain/Reading")({
  id: Schema.String,
  sensor_id: SensorId,
  user_id: UserId,
  timestamp: IsoTimestamp,
  glucose_value: GlucoseValue,
  source: Source,
  /** Only on a reading at the sensor's range: `LO` or `HI` (see `SensorLimit`). */
  sensor_limit: Schema.optionalKey(
    SensorLimit.annotate({
      description:
        "only on a reading at the edge of the sensor's range, as Nightscout uploaders report it: LO (sent as 39 mg/dL, below the range) or HI (sent as 401, above it); the value is a bound, not a measurement"
    })
  ),
  version: Schema.Int,
  etag: Schema.String,
  created_at: IsoTimestamp,
  updated_at: IsoTimestamp
}) {}

/**
 * Where an event was first appended to the events log: its partition and offset there. All events of
 * one sensor share a partition (the sensor id is the key), so within it the offset is the order in
 * which they were accepted, set by the log and not by any receiver's clock. A replay from the DLQ
 * carries the first position along (a header), so a replayed event keeps its place in that order.
 */
export interface EventPosition {
  readonly partition: number
  readonly offset: number
}

/** What the conflict rule compares: the content of a reading and the event that wrote it. */
export interface ReadingState {
  readonly sensor_id: SensorId
  readonly timestamp: number
  readonly glucose_value: number
  readonly source: Source
  /** Absent (or undefined) for an ordinary reading. */
  readonly sensor_limit?: SensorLimit | undefined
  readonly event_id: EventId
  /** Absent for a reading written before positions were kept. */
  readonly position?: EventPosition | undefined
  readonly version: number
}

/** The part of an event that can change a reading. */
export interface ReadingCandidate {
  readonly sensor_id: SensorId
  readonly user_id: UserId
  readonly timestamp: number
  readonly glucose_value: number
  readonly source: Source
  readonly sensor_limit?: SensorLimit | undefined
  readonly event_id: EventId
  /**
   * Where the event was first appended. Every event that came through the log has one; a write
   * without it (a benchmark, a fixture) is ordered by its event id instead.
   */
  readonly position?: EventPosition | undefined
}
