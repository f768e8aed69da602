/**
 * How many readings had one value. CGM values are (nearly always) integers
 * from 40 to 400 mg/dL, so a window of any length has a few hundred of these
 * at most: a histogram that is exact, small, and can be computed per stretch of
 * time (by a database: `GROUP BY value`) and added up.
 */
export interface ValueCount {
  readonly value: number
  readonly count: number
}

/** The histogram of a multiset of glucose values (mg/dL): sorted by value ascending, values distinct. */
export type ValueCounts = ReadonlyArray<ValueCount>

const byValue = (a: ValueCount, b: ValueCount): number => a.value - b.value

const tally = (into: Map<number, number>, value: number, count: number): void => {
  into.set(value, (into.get(value) ?? 0) + count)
}

const sorted = (tallies: Map<number, number>): ValueCounts =>
  Array.from(tallies, ([value, count]) => ({ value, count })).sort(byValue)

/** The histogram of the given values, which must be finite (NaN has no place in a sorted order). */
export const valueCountsOf = (values: Iterable<number>): ValueCounts => {
  const tallies = new Map<number, number>()
  for (const value of values) tally(tallies, value, 1)
  return sorted(tallies)
}

/**
 * The histogram of the union of several multisets (counts of equal values add),
 * so that the counts of separately stored stretches of time combine exactly.
 */
export const mergeValueCounts = (...parts: ReadonlyArray<ValueCounts>): ValueCounts => {
  const tallies = new Map<number, number>()
  for (const part of parts) for (const { value, count } of part) tally(tallies, value, count)
  return sorted(tallies)
}

/**
 * The `p`-th percentile (`p` from 0 to 100, clamped to that range) of the
 * multiset, by linear interpolation between closest ranks: with the n values
 * sorted as x[0..n-1] and h = (p / 100) × (n - 1), it is
 * x[⌊h⌋] + (h - ⌊h⌋) × (x[⌊h⌋ + 1] - x[⌊h⌋]). That is numpy's default,
 * R's type 7 and DuckDB's `quantile_cont`, so figures computed in the database
 * and here agree. `null` when there are no values (or `p` is NaN).
 *
 * Walks the counts instead of expanding the multiset: a 90-day window holds
 * about 26,000 readings but only a few hundred distinct values.
 */
export const percentileOf = (counts: ValueCounts, p: number): number | null => {
  let total = 0
  for (const { count } of counts) total += count
  if (total === 0) return null
  const h = (Math.min(Math.max(p, 0), 100) / 100) * (total - 1)
  const lowRank = Math.floor(h)
  const fraction = h - lowRank
  // Find the values at ranks lowRank and lowRank + 1 (0-based) in one walk.
  let seen = 0
  let low: number | null = null
  for (const { value, count } of counts) {
    seen += count
    if (low === null && lowRank < seen) {
      // x[lowRank + 1] is the same value when it still falls in this entry.
      if (lowRank + 1 < seen) return value
      low = value
    } else if (low !== null && count > 0) {
      return low + fraction * (value - low)
    }
  }
  // x[lowRank] is the largest value, so h = n - 1 and there is nothing to interpolate towards.
  return low
}
