import { Schema } from "effect"

/** How far back a reading's previous SENSOR reading may be for a rate: beyond, the trend is not computable. */
export const TREND_WINDOW_MS = 15 * 60_000

/**
 * The direction of a reading, as Dexcom and Nightscout name it, from its rate of change in mg/dL per minute:
 * `DoubleUp` at +3 or more, `SingleUp` at +2, `FortyFiveUp` at +1, `Flat` between, and the same downwards;
 * `NotComputable` without a previous SENSOR reading of the sensor within 15 minutes (or for a manual reading).
 */
export const ReadingTrend = Schema.Literals([
  "DoubleUp",
  "SingleUp",
  "FortyFiveUp",
  "Flat",
  "FortyFiveDown",
  "SingleDown",
  "DoubleDown",
  "NotComputable"
])
export type ReadingTrend = typeof ReadingTrend.Type

/** A reading's time and value (mg/dL). */
export interface TimedGlucose {
  readonly timestamp: number
  readonly value: number
}

/**
 * mg/dL per minute from `previous` to `current`, or null when there is no previous reading, it is not earlier,
 * or it is more than `TREND_WINDOW_MS` earlier.
 */
export const rateBetween = (previous: TimedGlucose | undefined, current: TimedGlucose): number | null => {
  if (previous === undefined) return null
  const elapsed = current.timestamp - previous.timestamp
  if (elapsed <= 0 || elapsed > TREND_WINDOW_MS) return null
  return (current.value - previous.value) / (elapsed / 60_000)
}

/** The direction a rate (mg/dL per minute) stands for; null is `NotComputable`. */
export const trendOf = (rate: number | null): ReadingTrend => {
  if (rate === null) return "NotComputable"
  if (rate >= 3) return "DoubleUp"
  if (rate >= 2) return "SingleUp"
  if (rate >= 1) return "FortyFiveUp"
  if (rate <= -3) return "DoubleDown"
  if (rate <= -2) return "SingleDown"
  if (rate <= -1) return "FortyFiveDown"
  return "Flat"
}
