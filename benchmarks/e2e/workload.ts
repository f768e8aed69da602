// The readings the load generator posts: each sensor's own strictly increasing timestamps (no reading
// is a duplicate of another), one sensor in ten at 50 mg/dL for the first two readings of every twelve
// (its first reading opens an episode), so URGENT_LOW episodes open and close (two clear readings end
// one). With every other alert kind off, the episodes each sensor must have follow from its stored
// readings (`expectedEpisodes`).
import { deriveAlertId } from "@dexmon/domain"

export const URGENT_LOW = 50
export const IN_RANGE = 120
const FIVE_MINUTES = 5 * 60_000
const SENSORS_PER_USER = 4

export interface PostedReading {
  readonly sensor_id: string
  readonly timestamp: string
}

/** A reading whose arrival the benchmark watches for in the stores (see `Probes`). */
export interface Probe {
  readonly sensor: string
  readonly user: string
  readonly timestamp: number
  readonly sentAt: number
  /** The episode this reading opens, if it opens one. */
  readonly alertId?: string
}

interface Sensor {
  readonly id: string
  readonly user: string
  readonly low: boolean
  /** Readings generated so far: the next one's index in the sensor's pattern. */
  generated: number
  lastTimestamp: number
}

const valueAt = (sensor: Sensor, index: number) => (sensor.low && index % 12 <= 1 ? URGENT_LOW : IN_RANGE)

export type Shape =
  /** One reading per request, live (timestamped now), sensors in turn. */
  | { readonly kind: "single" }
  /** `size` readings of one sensor per request, its newest, 100 ms apart up to now. */
  | { readonly kind: "batch"; readonly size: number }
  /** One request per sensor holding its last day, a reading every five minutes. */
  | { readonly kind: "backfill"; readonly size: number }

export interface Request {
  readonly user: string
  readonly body: string
  readonly readings: number
  readonly sensor: Sensor
  readonly timestamps: ReadonlyArray<string>
  readonly probe: Probe | undefined
  readonly alertProbes: ReadonlyArray<Probe>
}

/**
 * One phase's workload over `sensorCount` sensors named `<prefix>-<i>`. Every `probeEvery`-th
 * request's newest reading is a probe; every `alertProbeEvery`-th reading that opens an episode is an
 * alert probe.
 */
export const makeWorkload = (
  prefix: string,
  sensorCount: number,
  shape: Shape,
  probeEvery: number,
  alertProbeEvery: number
) => {
  let openings = 0
  const sensors: Array<Sensor> = Array.from({ length: sensorCount }, (_, i) => ({
    id: `${prefix}-${i}`,
    user: `${prefix}-user-${Math.floor(i / SENSORS_PER_USER)}`,
    low: i % 10 === 0,
    generated: 0,
    lastTimestamp: 0
  }))
  const acceptedSensors: Array<string> = []
  const acceptedTimestamps: Array<string> = []
  let requests = 0
  let priming = false

  /**
   * One in-range reading per request, sensors in turn, outside the pattern and without probes (`prime`):
   * now, or for a backfill the reading before the day it fills (the last one before the phone went quiet).
   */
  const primer = (now: number): Request => {
    const sensor = sensors[requests++ % sensorCount]!
    const at = shape.kind === "backfill" ? now - (shape.size + 1) * FIVE_MINUTES : now
    const timestamp = Math.max(at, sensor.lastTimestamp + 1)
    sensor.lastTimestamp = timestamp
    const reading = { sensor_id: sensor.id, timestamp: new Date(timestamp).toISOString(), glucose_value: IN_RANGE }
    return {
      user: sensor.user,
      body: JSON.stringify(reading),
      readings: 1,
      sensor,
      timestamps: [reading.timestamp],
      probe: undefined,
      alertProbes: []
    }
  }

  const next = (now: number, sentAt: number): Request => {
    if (priming) return primer(now)
    const sensor = sensors[requests % sensorCount]!
    const count = shape.kind === "single" ? 1 : shape.size
    const spacing = shape.kind === "backfill" ? FIVE_MINUTES : 100
    const readings: Array<{ sensor_id: string; timestamp: string; glucose_value: number }> = []
    const alertProbes: Array<Probe> = []
    let timestamp = 0
    for (let j = 0; j < count; j++) {
      timestamp = Math.max(now - (count - 1 - j) * spacing, sensor.lastTimestamp + 1)
      sensor.lastTimestamp = timestamp
      const index = sensor.generated++
      const value = valueAt(sensor, index)
      readings.push({ sensor_id: sensor.id, timestamp: new Date(timestamp).toISOString(), glucose_value: value })
      const opens = value === URGENT_LOW && (index === 0 || valueAt(sensor, index - 1) !== URGENT_LOW)
      if (opens && openings++ % alertProbeEvery === 0) {
        alertProbes.push({
          sensor: sensor.id,
          user: sensor.user,
          timestamp,
          sentAt,
          alertId: deriveAlertId(sensor.id, timestamp, "URGENT_LOW")
        })
      }
    }
    const probe = requests % probeEvery === 0 ? { sensor: sensor.id, user: sensor.user, timestamp, sentAt } : undefined
    requests++
    const body = JSON.stringify(shape.kind === "single" ? readings[0] : { readings })
    const timestamps = readings.map((reading) => reading.timestamp)
    return { user: sensor.user, body, readings: count, sensor, timestamps, probe, alertProbes }
  }

  const accept = (request: Request) => {
    for (const timestamp of request.timestamps) {
      acceptedSensors.push(request.sensor.id)
      acceptedTimestamps.push(timestamp)
    }
  }

  /** The keys of every accepted reading, as two parallel arrays (for an `unnest` join). */
  const acceptedKeys = () => ({ sensors: acceptedSensors, timestamps: acceptedTimestamps })

  /** The sensors that go low: the only ones with episodes. */
  const lowSensors = () => sensors.filter((sensor) => sensor.low).map(({ id, user }) => ({ id, user }))

  /**
   * While on, requests are `primer`'s: a load of one per sensor makes every sensor known (claimed, with an
   * alert state) before the measured load, as a live deployment's sensors are. Turning it off starts the
   * measured requests over at the first sensor.
   */
  const prime = (on: boolean) => {
    priming = on
    requests = 0
  }

  return { next, prime, accept, acceptedKeys, lowSensors, prefix }
}

/**
 * The URGENT_LOW episodes the engine must open over one sensor's stored values, in timestamp order:
 * one opens at a value at or below 55 when none is open and ends after two clear readings.
 */
export const episodesIn = (values: ReadonlyArray<number>) => {
  let episodes = 0
  let open = false
  let clear = 0
  for (const value of values) {
    if (value <= 55) {
      if (!open) episodes++
      open = true
      clear = 0
    } else if (open && ++clear >= 2) open = false
  }
  return episodes
}

export type Workload = ReturnType<typeof makeWorkload>
