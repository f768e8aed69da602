import type {
  EventId,
  EventPosition,
  InvalidCursor,
  Reading,
  SensorId,
  SensorLimit,
  Source,
  UserId
} from "@dexmon/domain"
import type { SensorRuns, TimeOfDayCounts, ValueCounts } from "@dexmon/statistics"
import { Context, type Effect, Schema } from "effect"
import { StoreFailureFields } from "../StoreFailure.ts"

/** One event's proposal for the reading at `(sensor_id, timestamp)`. */
export interface ReadingWrite {
  readonly event_id: EventId
  readonly sensor_id: SensorId
  readonly user_id: UserId
  readonly timestamp: number
  readonly glucose_value: number
  readonly source: Source
  /** Only on a reading at the sensor's range (`LO`, `HI`). */
  readonly sensor_limit?: SensorLimit | undefined
  /** Where the event was first appended to the events log: what decides which of two events is later. */
  readonly position?: EventPosition | undefined
}

/** What a batch did: rows inserted, rows whose content changed, and events that changed nothing. */
export interface UpsertSummary {
  readonly inserted: number
  readonly replaced: number
  readonly unchanged: number
}

export interface ReadingQuery {
  readonly user_id: UserId
  /** Inclusive lower bound, epoch milliseconds. */
  readonly from: number
  /** Exclusive upper bound, epoch milliseconds. */
  readonly to: number
  readonly sensor_id?: SensorId | undefined
  readonly limit: number
  readonly cursor?: string | undefined
}

/**
 * The readings a summary covers: a user's (one sensor's, when named) SENSOR readings in `[from, to)`, and how
 * they are binned by local time of day.
 */
export interface ReadingSummaryQuery {
  readonly user_id: UserId
  /** Inclusive lower bound, epoch milliseconds. */
  readonly from: number
  /** Exclusive upper bound, epoch milliseconds. */
  readonly to: number
  readonly sensor_id?: SensorId | undefined
  /** An IANA zone: the time-of-day bins are of the wall-clock time there. */
  readonly time_zone: string
  /** Minutes per time-of-day bin, a divisor of a day's 1,440. */
  readonly bin_minutes: number
}

/**
 * What the statistics and the AGP need of a stretch of readings, in parts that add up exactly with another
 * stretch's: the values with their counts (sums, counts and percentiles come from them), the same per bin of
 * local time of day, the five-minute UTC slots with data, and each sensor's runs (episodes come from them).
 */
export interface ReadingSummary {
  /** All the bins' counts merged. */
  readonly counts: ValueCounts
  /** The values with their counts per bin of local time of day (`bin_minutes` wide, in `time_zone`). */
  readonly by_time_of_day: TimeOfDayCounts
  /**
   * The five-minute UTC slots holding at least one of the readings (slot n starts at n × 5 minutes after the
   * epoch), ascending: a set, so two stretches sharing a slot count it once.
   */
  readonly slots: ReadonlyArray<number>
  /** Each sensor's series in timestamp order, as `sensorRunsOf` of `@dexmon/statistics` makes them. */
  readonly runs: SensorRuns
}

export interface ReadingPage {
  readonly items: ReadonlyArray<Reading>
  readonly next_cursor: string | null
}

export class ReadingStoreError extends Schema.TaggedError<ReadingStoreError>()(
  "ReadingStoreError",
  StoreFailureFields
) {}

/**
 * The hot store of readings, one row per `(sensor_id, timestamp)`, written by
 * the processor under the conflict rule and read by the gateway.
 */
export class ReadingStore extends Context.Service<
  ReadingStore,
  {
    /**
     * Applies events in the order given, each under the conflict rule, as one
     * transaction: either every event of the batch is applied or none is.
     */
    readonly upsert: (batch: ReadonlyArray<ReadingWrite>) => Effect.Effect<UpsertSummary, ReadingStoreError>
    /** A user's readings in a time range, oldest first. */
    readonly list: (query: ReadingQuery) => Effect.Effect<ReadingPage, ReadingStoreError | InvalidCursor>
    /** One reading of the user, if it exists. */
    readonly get: (
      userId: UserId,
      sensorId: SensorId,
      timestamp: number
    ) => Effect.Effect<Reading | undefined, ReadingStoreError>
    /** A summary of the readings, computed in the database (see `ReadingSummary`). */
    readonly summarize: (query: ReadingSummaryQuery) => Effect.Effect<ReadingSummary, ReadingStoreError>
    /** A cheap round trip to the store, for readiness probes. */
    readonly ping: Effect.Effect<void, ReadingStoreError>
    /** The values a reading had before its current one, oldest first. */
    readonly history: (
      sensorId: SensorId,
      timestamp: number
    ) => Effect.Effect<ReadonlyArray<Reading>, ReadingStoreError>
  }
>()("dexmon/ports/reading-store/ReadingStore") {}
