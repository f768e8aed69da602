import { wallClockAt } from "@dexmon/domain"
import { mergeValueCounts, percentileOf, type ValueCounts } from "./ValueCounts.ts"

const MINUTE_MS = 60_000
const DAY_MS = 24 * 60 * MINUTE_MS

/** The Ambulatory Glucose Profile's time-of-day bins: 96 of 15 minutes, the most the report draws. */
export const AGP_BIN_MINUTES = 15
export const AGP_BINS = (24 * 60) / AGP_BIN_MINUTES

/** The bin of the local time of day in `zone` at `instant` (wall-clock time: a day with a clock change has its
 * hour twice, or not at all, as the person lived it). */
export const timeOfDayBinOf = (instant: number, zone: string, binMinutes = AGP_BIN_MINUTES): number => {
  const wall = wallClockAt(zone, instant)
  const intoDay = ((wall % DAY_MS) + DAY_MS) % DAY_MS
  return Math.floor(intoDay / (binMinutes * MINUTE_MS))
}

/** The values of each time-of-day bin with their counts, indexed by bin: what the AGP's percentiles come from. */
export type TimeOfDayCounts = ReadonlyArray<ValueCounts>

/** The counts of each bin of several stretches of time added up, bin by bin. */
export const mergeTimeOfDayCounts = (bins: number, ...parts: ReadonlyArray<TimeOfDayCounts>): TimeOfDayCounts =>
  Array.from({ length: bins }, (_, bin) => mergeValueCounts(...parts.map((part) => part[bin] ?? [])))

/** The percentiles the AGP draws in one bin (mg/dL): the 5-95 % band, the 25-75 % band and the median. */
export interface ProfileBin {
  readonly p5: number
  readonly p25: number
  readonly p50: number
  readonly p75: number
  readonly p95: number
}

/**
 * The AGP's percentiles per bin, from the merged counts of that bin (never from partial percentiles); `null` for a
 * bin without readings, which the report leaves as a gap.
 */
export const timeOfDayProfileOf = (counts: TimeOfDayCounts): ReadonlyArray<ProfileBin | null> =>
  counts.map((bin) => {
    const at = (p: number) => percentileOf(bin, p)
    const p50 = at(50)
    if (p50 === null) return null
    return { p5: at(5)!, p25: at(25)!, p50, p75: at(75)!, p95: at(95)! }
  })
