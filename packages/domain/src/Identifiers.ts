import { Schema } from "effect"

/** A sensor as the app names it: 1 to 64 of `[A-Za-z0-9._-]`, so it is safe as a Kafka key and a path segment. */
export const SensorId = Schema.String.check(
  Schema.isPattern(/^[A-Za-z0-9._-]{1,64}$/, {
    message: "must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'"
  })
).pipe(Schema.brand("SensorId"))
export type SensorId = typeof SensorId.Type

/** The owner of a reading; it comes from the authenticated caller, never from a request body. */
export const UserId = Schema.String.check(
  Schema.isPattern(/^[A-Za-z0-9._@:|-]{1,128}$/, {
    message: "must be 1 to 128 characters of A-Z, a-z, 0-9, '.', '_', '@', ':', '|' or '-'"
  })
).pipe(Schema.brand("UserId"))
export type UserId = typeof UserId.Type

/**
 * A time-ordered event id (UUID version 7) assigned by the receiver at ingestion.
 * Comparing two ids as strings orders them by ingestion time, which is what the
 * conflict rule means by "newer".
 */
export const EventId = Schema.String.check(Schema.isUUID(7)).pipe(Schema.brand("EventId"))
export type EventId = typeof EventId.Type

/** An alert id, derived from `(sensor_id, timestamp, type)` so a replayed event maps to the same alert. */
export const AlertId = Schema.String.check(Schema.isUUID()).pipe(Schema.brand("AlertId"))
export type AlertId = typeof AlertId.Type
