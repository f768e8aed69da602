import type { SensorId } from "@dexmon/domain"

/**
 * The glycemic band of a reading (mg/dL), by the consensus thresholds that
 * episodes are defined on: 0 below 54 (level 2 hypoglycemia), 1 from 54 to
 * below 70 (level 1), 2 from 70 to 250, 3 above 250 (level 2 hyperglycemia).
 * Time in ranges uses a finer split (180) but is computed from value counts,
 * not from runs, so the bands only need the episode thresholds.
 */
export type Band = 0 | 1 | 2 | 3

/** The band of a glucose value in mg/dL; non-integer values fall on the bounds as written. */
export const bandOf = (value: number): Band => (value < 54 ? 0 : value < 70 ? 1 : value <= 250 ? 2 : 3)

/**
 * Two consecutive readings further apart than this are not in one run: the
 * data stopped (sensor warm-up, lost signal), and nothing is known in between.
 * At the usual 5-minute spacing, two missed readings keep a run going; a longer
 * silence is as long as the 15 minutes that make an episode, so bridging it
 * would be a guess.
 */
export const MAX_READING_GAP_MS = 15 * 60_000

/**
 * Consecutive readings in one band with no data gap between them. A series of
 * thousands of readings is a few hundred runs; a database computes them with a
 * gaps-and-islands query, and runs of adjacent stretches of time join
 * ({@link joinRuns}), so episodes can be found without loading every reading.
 */
export interface GlucoseRun {
  readonly band: Band
  /** Epoch milliseconds of its first reading. */
  readonly first: number
  /** Epoch milliseconds of its last reading. */
  readonly last: number
  readonly count: number
}

/** The fields of a reading that runs are made of. */
export interface TimedValue {
  readonly timestamp: number
  readonly value: number
}

/**
 * The runs of a series of readings, which must be in timestamp order. Equal
 * timestamps (two sensors, or a sensor and a finger stick) are fine; their
 * order among themselves is the caller's, and decides where a run breaks when
 * their bands differ. A new run starts when the band changes or when
 * `timestamp - previous.timestamp > MAX_READING_GAP_MS`.
 */
export const runsOf = (readings: Iterable<TimedValue>): ReadonlyArray<GlucoseRun> => {
  const runs: Array<GlucoseRun> = []
  let current: GlucoseRun | undefined
  for (const { timestamp, value } of readings) {
    const band = bandOf(value)
    if (current !== undefined && current.band === band && timestamp - current.last <= MAX_READING_GAP_MS) {
      current = { band, first: current.first, last: timestamp, count: current.count + 1 }
    } else {
      if (current !== undefined) runs.push(current)
      current = { band, first: timestamp, last: timestamp, count: 1 }
    }
  }
  if (current !== undefined) runs.push(current)
  return runs
}

/**
 * The runs of the series `earlier` followed by `later` (all of whose readings
 * are at or after `earlier`'s last): the runs at the seam become one when they
 * have the same band and `later[0].first - earlier.at(-1).last <= MAX_READING_GAP_MS`,
 * exactly as {@link runsOf} would have continued the run. So
 * `joinRuns(runsOf(a), runsOf(b))` equals `runsOf([...a, ...b])` for any split
 * of a sorted series, and runs stored per day join into runs of any window.
 */
export const joinRuns = (
  earlier: ReadonlyArray<GlucoseRun>,
  later: ReadonlyArray<GlucoseRun>
): ReadonlyArray<GlucoseRun> => {
  const tail = earlier.at(-1)
  const head = later[0]
  if (tail === undefined || head === undefined) return [...earlier, ...later]
  if (tail.band !== head.band || head.first - tail.last > MAX_READING_GAP_MS) return [...earlier, ...later]
  return [
    ...earlier.slice(0, -1),
    { band: tail.band, first: tail.first, last: head.last, count: tail.count + head.count },
    ...later.slice(1)
  ]
}

/**
 * The runs of each sensor's own series, by sensor id. Two sensors worn at
 * once (the overlap when one is replaced, or two people's sensors under one
 * account) are two series: interleaved, one's readings would cut the other's
 * runs into pieces a few minutes long, and no episode would ever reach 15
 * minutes.
 */
export type SensorRuns = ReadonlyMap<SensorId, ReadonlyArray<GlucoseRun>>

/** A reading of one sensor, as {@link sensorRunsOf} takes them. */
export interface SensorTimedValue extends TimedValue {
  readonly sensor_id: SensorId
}

/** The runs of each sensor's readings; the readings must be in timestamp order (any order among sensors). */
export const sensorRunsOf = (readings: Iterable<SensorTimedValue>): SensorRuns => {
  const series = new Map<SensorId, Array<TimedValue>>()
  for (const reading of readings) {
    const own = series.get(reading.sensor_id)
    if (own === undefined) series.set(reading.sensor_id, [reading])
    else own.push(reading)
  }
  return new Map(Array.from(series, ([sensorId, own]) => [sensorId, runsOf(own)] as const))
}

/** {@link joinRuns} for each sensor: `later` holds readings at or after each sensor's last one in `earlier`. */
export const joinSensorRuns = (earlier: SensorRuns, later: SensorRuns): SensorRuns => {
  const joined = new Map(earlier)
  for (const [sensorId, runs] of later) joined.set(sensorId, joinRuns(earlier.get(sensorId) ?? [], runs))
  return joined
}
