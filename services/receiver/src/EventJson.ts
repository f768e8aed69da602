import { formatIsoTimestamp, type GlucoseEvent } from "@dexmon/domain"

/**
 * The JSON text of an event exactly as `encodeGlucoseEvent` writes it, without the Schema encoder's
 * second look at every field: it checks each value and each timestamp's pattern and calendar date again,
 * which the receiver has done already (the readings by the API's schema, the other fields made here),
 * and on batches that was about a fifth of the receiver's CPU (a profile of `pnpm bench:ingest`). A test
 * holds it to the Schema encoder's output, field by field, for every field `GlucoseEvent` has.
 */
export const glucoseEventJson = (event: GlucoseEvent): string =>
  JSON.stringify({
    schema_version: event.schema_version,
    event_id: event.event_id,
    sensor_id: event.sensor_id,
    user_id: event.user_id,
    timestamp: formatIsoTimestamp(event.timestamp),
    glucose_value: event.glucose_value,
    source: event.source,
    received_at: formatIsoTimestamp(event.received_at),
    ...(event.settings_version === undefined ? {} : { settings_version: event.settings_version }),
    ...(event.sensor_limit === undefined ? {} : { sensor_limit: event.sensor_limit })
  })
