import type { SensorId } from "@dexmon/domain"
import { type Band, type GlucoseRun, MAX_READING_GAP_MS, type SensorRuns } from "./GlucoseRuns.ts"

/**
 * A stretch of time spent in a condition (below 54, below 70, above 250 mg/dL),
 * as the international consensus on CGM metrics (Battelino et al., 2019)
 * counts them: it needs 15 minutes in the condition to begin and 15 minutes
 * out of it to end.
 */
export interface Episode {
  /** Epoch milliseconds of its first reading in the condition. */
  readonly start: number
  /**
   * Epoch milliseconds of the first reading of the 15 minutes out of the
   * condition that ended it, or of the last reading before a data gap; `null`
   * when it was still open when the data ended.
   */
  readonly end: number | null
  /** `(end ?? last reading in the condition) - start`, in minutes, unrounded. */
  readonly minutes: number
}

const MINIMUM_MS = 15 * 60_000

/** Consecutive runs that are all in, or all out of, the condition, with no data gap between them. */
interface Segment {
  readonly inCondition: boolean
  readonly first: number
  readonly last: number
  /** Whether a data gap follows it (the next segment starts more than {@link MAX_READING_GAP_MS} later). */
  readonly gapAfter: boolean
}

const segmentsOf = (runs: ReadonlyArray<GlucoseRun>, inCondition: (band: Band) => boolean): Array<Segment> => {
  const segments: Array<Segment> = []
  let current: { inCondition: boolean; first: number; last: number } | undefined
  for (const run of runs) {
    const runIn = inCondition(run.band)
    if (current !== undefined && current.inCondition === runIn && run.first - current.last <= MAX_READING_GAP_MS) {
      current.last = run.last
      continue
    }
    if (current !== undefined) segments.push({ ...current, gapAfter: run.first - current.last > MAX_READING_GAP_MS })
    current = { inCondition: runIn, first: run.first, last: run.last }
  }
  if (current !== undefined) segments.push({ ...current, gapAfter: false })
  return segments
}

const episode = (start: number, end: number | null, lastInCondition: number): Episode => ({
  start,
  end,
  minutes: ((end ?? lastInCondition) - start) / 60_000
})

/**
 * The episodes of a condition in a series of runs (in time order, as
 * `runsOf` and `joinRuns` give them), by these rules:
 *
 * a. Merge consecutive runs into segments by `inCondition(run.band)` (in or out
 *    of the condition); runs separated by a data gap
 *    (`next.first - run.last > MAX_READING_GAP_MS`) are never in one segment and
 *    the gap is remembered.
 * b. A segment's duration is `next.first - segment.first` when the next segment
 *    follows without a gap, else `segment.last - segment.first` (the data stopped).
 * c. With no episode open, an in-condition segment whose duration is at least
 *    15 minutes opens one at `segment.first`.
 * d. With an episode open, an out-of-condition segment whose duration is at least
 *    15 minutes ends it at `segment.first` (its first reading back at or beyond
 *    the threshold); a shorter one does not end it (the episode continues
 *    through it, and its minutes count in the episode).
 * e. A data gap ends an open episode at the last reading before the gap
 *    (`end` = that reading's time), since nothing is known after it.
 * f. An episode still open after the last segment has `end: null`.
 *
 * Rule b measures a segment up to the next reading when there is one, so three
 * readings 5 minutes apart followed by a reading out of the condition count as
 * 15 minutes; at the end of the data or before a gap only the readings
 * themselves count, so the same three readings last 10 minutes there.
 */
export const episodesOf = (
  runs: ReadonlyArray<GlucoseRun>,
  inCondition: (band: Band) => boolean
): ReadonlyArray<Episode> => {
  const segments = segmentsOf(runs, inCondition)
  const episodes: Array<Episode> = []
  let open: { start: number; lastInCondition: number } | undefined
  segments.forEach((segment, i) => {
    const next = segments[i + 1]
    const duration = next !== undefined && !segment.gapAfter ? next.first - segment.first : segment.last - segment.first
    if (segment.inCondition) {
      if (open !== undefined) open.lastInCondition = segment.last
      else if (duration >= MINIMUM_MS) open = { start: segment.first, lastInCondition: segment.last }
    } else if (open !== undefined && duration >= MINIMUM_MS) {
      episodes.push(episode(open.start, segment.first, open.lastInCondition))
      open = undefined
    }
    if (open !== undefined && segment.gapAfter) {
      episodes.push(episode(open.start, segment.last, open.lastInCondition))
      open = undefined
    }
  })
  if (open !== undefined) episodes.push(episode(open.start, null, open.lastInCondition))
  return episodes
}

/** An episode of one sensor's series. */
export interface SensorEpisode extends Episode {
  readonly sensor_id: SensorId
}

/**
 * The episodes of a condition in each sensor's series, all sensors' together
 * in order of start (then sensor id). Each sensor's episodes are its own: a
 * second sensor worn at the same time neither cuts one short nor makes one.
 */
export const sensorEpisodesOf = (
  runs: SensorRuns,
  inCondition: (band: Band) => boolean
): ReadonlyArray<SensorEpisode> =>
  Array.from(runs, ([sensorId, own]) =>
    episodesOf(own, inCondition).map((item): SensorEpisode => ({ sensor_id: sensorId, ...item }))
  )
    .flat()
    .sort((a, b) => a.start - b.start || (a.sensor_id < b.sensor_id ? -1 : a.sensor_id > b.sensor_id ? 1 : 0))

/** An episode of the person wearing the sensors, as each sensor that saw it found it. */
export interface WornEpisode extends Episode {
  /** The sensors whose episodes overlapped in time to make this one, sorted. */
  readonly sensor_ids: ReadonlyArray<SensorId>
}

/**
 * Sensors' episodes merged where they overlap in time: two sensors worn at once (the day one is replaced) see the
 * same low, and it is one episode, from the first start to the last end, not two. An episode's extent is from its
 * start to its end, or to its last reading in the condition when it has none; the merged `end` is that of the
 * episode reaching furthest (`null` if that one was still open). One sensor's episodes never overlap (15 minutes
 * out of the condition, or a data gap, lie between them), so they come out as they went in.
 */
export const mergeOverlapping = (episodes: ReadonlyArray<SensorEpisode>): ReadonlyArray<WornEpisode> => {
  const extentOf = (item: Episode) => item.start + item.minutes * 60_000
  const merged: Array<{ start: number; end: number | null; extent: number; sensors: Set<SensorId> }> = []
  for (const item of [...episodes].sort((a, b) => a.start - b.start)) {
    const current = merged.at(-1)
    if (current !== undefined && item.start <= current.extent) {
      current.sensors.add(item.sensor_id)
      if (extentOf(item) >= current.extent) {
        current.extent = extentOf(item)
        current.end = item.end
      }
    } else {
      merged.push({ start: item.start, end: item.end, extent: extentOf(item), sensors: new Set([item.sensor_id]) })
    }
  }
  return merged.map(({ end, extent, sensors, start }) => ({
    sensor_ids: [...sensors].sort(),
    start,
    end,
    minutes: (extent - start) / 60_000
  }))
}

/**
 * The conditions the statistics report episodes for: level 2 hypoglycemia
 * (below 54), any hypoglycemia (below 70, so it contains the below-54 ones),
 * and level 2 hyperglycemia (above 250).
 */
export const EPISODE_CONDITIONS = {
  below_54: (band: Band) => band === 0,
  below_70: (band: Band) => band <= 1,
  above_250: (band: Band) => band === 3
} as const satisfies Record<string, (band: Band) => boolean>

/** The name of a condition in {@link EPISODE_CONDITIONS}, as it appears in the statistics. */
export type EpisodeCondition = keyof typeof EPISODE_CONDITIONS
