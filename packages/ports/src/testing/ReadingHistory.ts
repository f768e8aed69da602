import { EventId, SensorId, UserId } from "@dexmon/domain"
import { Effect } from "effect"
import { ReadingStore, type ReadingWrite } from "../reading-store/ReadingStore.ts"

const DAY = 86_400_000

export interface ReadingHistoryOptions {
  /** The instant the history ends at (epoch ms); the archive boundary is `now - retentionDays`. */
  readonly now: number
  readonly users: number
  readonly readingsPerUser: number
  readonly days: number
  readonly retentionDays: number
}

/**
 * A long history of readings for archive tests and benchmarks: `users` users
 * with one sensor each, `readingsPerUser` readings evenly spaced over `days`
 * days. Every user's readings sit at the same steps, offset by 3 s per user,
 * and the steps are placed so that no reading lies in the 20 minutes after the
 * retention boundary: archiver runs started within that time of `now` all see
 * the same set of due readings, whatever their exact clock.
 */
export const readingHistory = (options: ReadingHistoryOptions) => {
  const step = Math.floor((options.days * DAY) / options.readingsPerUser)
  const boundary = options.now - options.retentionDays * DAY
  const beforeBoundary = Math.round(((options.days - options.retentionDays) * DAY) / step)
  // Step `beforeBoundary` starts 11 minutes before the boundary; its last user is 3 s × users later.
  const start = boundary - 660_000 - beforeBoundary * step
  if (options.users * 3_000 > 600_000 || step - 660_000 < 20 * 60_000) {
    throw new Error("too many users or too short a step for a quiet window after the boundary")
  }
  const eventBase = BigInt(options.now) * 1_000n
  const user = (u: number) => UserId.make(`history-user-${u}`)
  const sensor = (u: number) => SensorId.make(`history-sensor-${u}`)
  const write = (u: number, i: number): ReadingWrite => ({
    event_id: EventId.make(
      `01900000-0000-7000-8000-${(eventBase + BigInt(u * options.readingsPerUser + i)).toString(16).slice(-12).padStart(12, "0")}`
    ),
    sensor_id: sensor(u),
    user_id: user(u),
    timestamp: start + i * step + u * 3_000,
    glucose_value: 40 + ((i * 7 + u * 13) % 360),
    source: i % 10 === 0 ? "MANUAL" : "SENSOR"
  })
  return {
    boundary,
    step,
    total: options.users * options.readingsPerUser,
    /** Readings strictly before the boundary: the first `beforeBoundary + 1` steps of every user. */
    due: options.users * Math.min(options.readingsPerUser, beforeBoundary + 1),
    user,
    sensor,
    write,
    /** Every reading, in batches of `size`, generated as they are taken: memory stays flat. */
    *batches(size: number): Generator<ReadonlyArray<ReadingWrite>> {
      let batch: Array<ReadingWrite> = []
      for (let i = 0; i < options.readingsPerUser; i++) {
        for (let u = 0; u < options.users; u++) {
          batch.push(write(u, i))
          if (batch.length === size) {
            yield batch
            batch = []
          }
        }
      }
      if (batch.length > 0) yield batch
    }
  }
}

/** Writes the whole history through the readings store's upsert, in batches of 5,000. */
export const seedReadingHistory = (history: ReturnType<typeof readingHistory>) =>
  Effect.gen(function* () {
    const store = yield* ReadingStore
    for (const batch of history.batches(5_000)) yield* store.upsert(batch)
  })
