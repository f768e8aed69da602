import type { WindowReading } from "./SensorState.ts"

const MINUTE = 60_000

export interface Trend {
  /** Least-squares slope, mg/dL per minute. */
  readonly slope: number
  /** The fitted line's value at `at + horizon`. */
  readonly projected: number
}

/**
 * The least-squares line through the readings within `window` of `at`
 * (inclusive), or undefined with fewer than `minReadings` of them: what
 * `URGENT_LOW_SOON` projects and the rate alerts compare.
 */
export const trendAt = (
  readings: ReadonlyArray<WindowReading>,
  at: number,
  window: number,
  minReadings: number,
  horizon: number
): Trend | undefined => {
  const points = readings.filter((r) => r.t <= at && r.t >= at - window)
  if (points.length < minReadings) return undefined
  // Minutes relative to `at`, so the sums stay small and the intercept is the fitted value at `at`.
  const xs = points.map((p) => (p.t - at) / MINUTE)
  const n = points.length
  const meanX = xs.reduce((a, b) => a + b, 0) / n
  const meanY = points.reduce((a, p) => a + p.v, 0) / n
  let covariance = 0
  let variance = 0
  for (let i = 0; i < n; i++) {
    covariance += (xs[i]! - meanX) * (points[i]!.v - meanY)
    variance += (xs[i]! - meanX) ** 2
  }
  if (variance === 0) return undefined
  const slope = covariance / variance
  const atNow = meanY - slope * meanX
  return { slope, projected: atNow + slope * (horizon / MINUTE) }
}
