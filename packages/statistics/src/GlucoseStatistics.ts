import {
  EPISODE_CONDITIONS,
  type EpisodeCondition,
  mergeOverlapping,
  sensorEpisodesOf,
  type WornEpisode
} from "./Episodes.ts"
import type { SensorRuns } from "./GlucoseRuns.ts"
import type { TimeOfDayCounts } from "./TimeOfDayProfile.ts"
import { toUnits, type Units } from "./Units.ts"
import { mergeValueCounts, type ValueCounts } from "./ValueCounts.ts"

/**
 * The width of a CGM slot: sensors report every 5 minutes, so CGM activity is
 * the share of 5-minute UTC slots in the window that hold at least one reading.
 */
export const SLOT_MS = 5 * 60_000

/**
 * What the statistics of a window are computed from. Each part can be
 * computed by a database per stretch of time and combined: counts merge
 * (`mergeValueCounts`), runs join (`joinSensorRuns`), covered slots are a union (a slot counts once).
 */
export interface GlucoseStatisticsInput {
  /** The values of the readings in the window, mg/dL. */
  readonly counts: ValueCounts
  /** Distinct 5-minute UTC slots in the window with at least one reading. */
  readonly slots: number
  /** Start of the window, epoch milliseconds, inclusive. */
  readonly from: number
  /** End of the window, epoch milliseconds, exclusive. */
  readonly to: number
  /** The runs of each sensor's readings in the window, in time order. */
  readonly runs: SensorRuns
  readonly units: Units
}

/** A share of the readings, and the time it stands for. */
export interface TimeInRange {
  /** Percent of the readings. */
  readonly percent: number
  /** `percent / 100 × slots × 5`: the share applied to the time the sensor was active. */
  readonly minutes: number
}

/** Time in the five consensus ranges (mg/dL); bounds as written, so non-integer values fall on them exactly. */
export interface TimeInRanges {
  /** Below 54. */
  readonly very_low: TimeInRange
  /** From 54 to below 70. */
  readonly low: TimeInRange
  /** From 70 to 180, both included. */
  readonly in_range: TimeInRange
  /** Above 180, up to 250 included. */
  readonly high: TimeInRange
  /** Above 250. */
  readonly very_high: TimeInRange
}

/** The episodes of one condition in the window. */
export interface EpisodeSummary {
  readonly count: number
  /** The sum of the episodes' minutes. */
  readonly minutes: number
  /** The sensors' episodes, those of sensors worn at once that overlap merged into one, in order of start. */
  readonly items: ReadonlyArray<WornEpisode>
}

/**
 * The consensus summary of a window of CGM data, as the API serves it (field
 * names as in the JSON). Numbers are unrounded: rounding is for display, and
 * a client that rounds twice would disagree with one that rounds once.
 */
export interface GlucoseStatistics {
  readonly units: Units
  /** How many readings the window holds. */
  readonly readings: number
  readonly window_minutes: number
  readonly window_days: number
  /** Percent of the window's 5-minute slots with at least one reading. */
  readonly cgm_active_percent: number
  /** The consensus minimum for the metrics to be meaningful: 14 days of data, 70% of it with the sensor active. */
  readonly data_sufficient: boolean
  readonly time_in_ranges: TimeInRanges
  /** Mean glucose in `units`; null without readings. */
  readonly mean: number | null
  /** Population standard deviation in `units`; null without readings. */
  readonly standard_deviation: number | null
  /** Percent, SD / mean × 100 (unitless, so the same in either units); null without readings. */
  readonly coefficient_of_variation: number | null
  /** Above 36%, the consensus threshold for unstable glucose. */
  readonly variability_high: boolean
  /** Glucose management indicator, percent (HbA1c-like): 3.31 + 0.02392 × mean mg/dL. */
  readonly gmi_percent: number | null
  /** Glucose management indicator, mmol/mol (IFCC): 12.71 + 4.70587 × mean mmol/L. */
  readonly gmi_mmol_per_mol: number | null
  readonly episodes: Readonly<Record<EpisodeCondition, EpisodeSummary>>
}

/** The range index of a value (mg/dL) in {@link TimeInRanges} order. */
const rangeOf = (value: number): number => (value < 54 ? 0 : value < 70 ? 1 : value <= 180 ? 2 : value <= 250 ? 3 : 4)

const summaryOf = (items: ReadonlyArray<WornEpisode>): EpisodeSummary => {
  let minutes = 0
  for (const item of items) minutes += item.minutes
  return { count: items.length, minutes, items }
}

/** What a multiset of values alone gives: how many, how many in each range, mean and SD (mg/dL), CV. */
interface ValueSummary {
  readonly readings: number
  /** Readings per range, in {@link TimeInRanges} order. */
  readonly inRange: ReadonlyArray<number>
  readonly mean: number | null
  readonly sd: number | null
  readonly cv: number | null
}

/**
 * Mean and standard deviation come from the counts in two passes (the mean first, then the squared deviations from
 * it), which stays accurate where the one-pass Σx² - n·mean² would cancel catastrophically.
 */
const valueSummaryOf = (counts: ValueCounts): ValueSummary => {
  let readings = 0
  let sum = 0
  const inRange = [0, 0, 0, 0, 0]
  for (const { count, value } of counts) {
    readings += count
    sum += count * value
    const range = rangeOf(value)
    inRange[range] = (inRange[range] ?? 0) + count
  }
  if (readings === 0) return { readings, inRange, mean: null, sd: null, cv: null }
  const mean = sum / readings
  let squares = 0
  for (const { count, value } of counts) squares += count * (value - mean) ** 2
  const sd = Math.sqrt(squares / readings)
  return { readings, inRange, mean, sd, cv: mean !== 0 ? (sd / mean) * 100 : null }
}

const percentOf = (summary: ValueSummary, range: number): number =>
  summary.readings > 0 ? (100 * (summary.inRange[range] ?? 0)) / summary.readings : 0

/**
 * The statistics of a window. A window with no time in it (`to <= from`) has no slots and 0% activity.
 */
export const glucoseStatisticsOf = (input: GlucoseStatisticsInput): GlucoseStatistics => {
  const { counts, slots, from, runs, to, units } = input
  const windowMs = to - from
  // The five-minute UTC slots the window touches, so a window that does not start on a slot boundary
  // still counts each slot a reading can fall in (never over 100 %).
  const windowSlots = windowMs > 0 ? Math.floor((to - 1) / SLOT_MS) - Math.floor(from / SLOT_MS) + 1 : 0
  const cgmActivePercent = windowSlots > 0 ? (100 * slots) / windowSlots : 0
  const windowDays = windowMs / 86_400_000
  const values = valueSummaryOf(counts)
  const { readings, mean, sd, cv } = values
  const share = (range: number): TimeInRange => {
    const percent = percentOf(values, range)
    return { percent, minutes: (percent / 100) * slots * 5 }
  }

  return {
    units,
    readings,
    window_minutes: windowMs / 60_000,
    window_days: windowDays,
    cgm_active_percent: cgmActivePercent,
    data_sufficient: cgmActivePercent >= 70 && windowDays >= 14,
    time_in_ranges: { very_low: share(0), low: share(1), in_range: share(2), high: share(3), very_high: share(4) },
    mean: mean === null ? null : toUnits(mean, units),
    standard_deviation: sd === null ? null : toUnits(sd, units),
    coefficient_of_variation: cv,
    variability_high: cv !== null && cv > 36,
    gmi_percent: mean === null ? null : 3.31 + 0.02392 * mean,
    gmi_mmol_per_mol: mean === null ? null : 12.71 + 4.70587 * toUnits(mean, "mmol/L"),
    episodes: {
      below_54: summaryOf(mergeOverlapping(sensorEpisodesOf(runs, EPISODE_CONDITIONS.below_54))),
      below_70: summaryOf(mergeOverlapping(sensorEpisodesOf(runs, EPISODE_CONDITIONS.below_70))),
      above_250: summaryOf(mergeOverlapping(sensorEpisodesOf(runs, EPISODE_CONDITIONS.above_250)))
    }
  }
}

/** A part of the day's statistics: what its readings' values give, without time (slots) or episodes. */
export interface PeriodStatistics {
  readonly readings: number
  readonly time_in_ranges: Readonly<Record<keyof TimeInRanges, { readonly percent: number }>>
  readonly mean: number | null
  readonly standard_deviation: number | null
  readonly coefficient_of_variation: number | null
}

/** The statistics of the values of one period (mean and SD in `units`). */
export const periodStatisticsOf = (counts: ValueCounts, units: Units): PeriodStatistics => {
  const values = valueSummaryOf(counts)
  const share = (range: number) => ({ percent: percentOf(values, range) })
  return {
    readings: values.readings,
    time_in_ranges: { very_low: share(0), low: share(1), in_range: share(2), high: share(3), very_high: share(4) },
    mean: values.mean === null ? null : toUnits(values.mean, units),
    standard_deviation: values.sd === null ? null : toUnits(values.sd, units),
    coefficient_of_variation: values.cv
  }
}

/**
 * Night is 00:00 to 06:00 local time, day 06:00 to 24:00: the split of the international consensus on CGM use
 * (Danne et al., Diabetes Care 2017), where overnight lows go unnoticed. Counts binned by local time of day in
 * bins of this many minutes give night as bin 0 and day as the rest.
 */
export const NIGHT_BIN_MINUTES = 360

/** Night's and day's statistics from counts binned by local time of day in {@link NIGHT_BIN_MINUTES}. */
export const nightAndDayOf = (
  counts: TimeOfDayCounts,
  units: Units
): { readonly night: PeriodStatistics; readonly day: PeriodStatistics } => ({
  night: periodStatisticsOf(counts[0] ?? [], units),
  day: periodStatisticsOf(mergeValueCounts(...counts.slice(1)), units)
})
