import fc from "fast-check"
import type { TimedValue } from "../src/index.ts"

/** 2024-01-01T00:00:00Z: a realistic epoch so that arithmetic on timestamps is at its real magnitude. */
export const T0 = 1_704_067_200_000

export const MINUTE = 60_000

/** The epoch milliseconds `minutes` after {@link T0}. */
export const at = (minutes: number): number => T0 + minutes * MINUTE

/** Readings of the given values 5 minutes apart, the first at `startMinute`. */
export const every5 = (values: ReadonlyArray<number>, startMinute = 0): Array<TimedValue> =>
  values.map((value, i) => ({ timestamp: at(startMinute + 5 * i), value }))

/** `count` copies of `value`. */
export const times = (count: number, value: number): Array<number> => Array.from({ length: count }, () => value)

/**
 * A series in timestamp order with what makes runs and episodes break: the band
 * thresholds, equal timestamps, steps exactly at and just past the 15-minute gap.
 */
export const sortedSeries: fc.Arbitrary<Array<TimedValue>> = fc
  .array(
    fc.record({
      step: fc.oneof(
        fc.constantFrom(0, 5 * MINUTE, 5 * MINUTE, 5 * MINUTE, 15 * MINUTE, 15 * MINUTE + 1, 40 * MINUTE),
        fc.integer({ min: 0, max: 20 * MINUTE })
      ),
      value: fc.oneof(fc.constantFrom(40, 53.9, 54, 69.9, 70, 100, 250, 250.1, 300), fc.integer({ min: 40, max: 400 }))
    }),
    { maxLength: 60 }
  )
  .map((steps) => {
    let timestamp = T0
    return steps.map(({ step, value }) => {
      timestamp += step
      return { timestamp, value }
    })
  })

/** A series and a place to split it. */
export const splitSeries = fc
  .tuple(sortedSeries, fc.nat())
  .map(([series, at]) => ({ series, cut: at % (series.length + 1) }))
