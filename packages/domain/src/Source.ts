import { Schema } from "effect"

/** Where a reading came from: the CGM itself, or a finger-stick value typed in by the user. */
export const Source = Schema.Literals(["SENSOR", "MANUAL"])
export type Source = typeof Source.Type

/**
 * A reading at the edge of what the sensor measures, as Dexcom's uploaders report it through Nightscout:
 * `LO` (sent as 39 mg/dL: below the sensor's range, so below every low threshold) or `HI` (sent as 401:
 * above it, so above every high threshold). The value is kept as sent; the flag says it is a bound, not a
 * measurement. Absent for an ordinary reading.
 */
export const SensorLimit = Schema.Literals(["LO", "HI"])
export type SensorLimit = typeof SensorLimit.Type
