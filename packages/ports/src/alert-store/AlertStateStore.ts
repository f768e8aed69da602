import type { SensorId, UserId } from "@dexmon/domain"
import { Context, type Effect, Schema } from "effect"
import { StoreFailureFields } from "../StoreFailure.ts"

/** The alert engine's state of one sensor, as the store keeps it. */
export interface SensorStateRow {
  readonly sensor_id: SensorId
  readonly user_id: UserId
  /** The event-log partition the sensor's events are on: the notifier that owns it runs the sensor's clock ticks. */
  readonly log_partition: number
  /** The engine's state, encoded by the engine (the store does not look inside). */
  readonly state: string
  /** When the engine next needs a clock tick for this sensor (epoch ms); null when never (a retired sensor). */
  readonly check_at: number | null
  /** Bumped by every write; a write names the revision it read, so a stale writer cannot overwrite a newer state. */
  readonly revision: number
}

/** A conditional write: it applies only while the stored revision is still `expected_revision` (0: no row yet). */
export interface SensorStateWrite {
  readonly row: Omit<SensorStateRow, "revision">
  readonly expected_revision: number
}

export class AlertStateStoreError extends Schema.TaggedError<AlertStateStoreError>()(
  "AlertStateStoreError",
  StoreFailureFields
) {}

/**
 * Some conditional writes found another revision: another notifier (a zombie
 * or the partition's new owner) wrote those sensors since they were read. The
 * writes of the other sensors went through. Read again and decide again.
 */
export class AlertStateConflict extends Schema.TaggedError<AlertStateConflict>()("AlertStateConflict", {
  sensor_ids: Schema.Array(Schema.String)
}) {}

/**
 * The alert engine's durable per-sensor state: one row (one Cassandra
 * partition) per sensor beside the alerts. Reads and writes are at least
 * `LOCAL_QUORUM` (conditional writes at `LOCAL_SERIAL`) whatever the
 * deployment's default consistency, so a notifier that takes over a partition
 * reads every state its predecessor wrote.
 */
export class AlertStateStore extends Context.Service<
  AlertStateStore,
  {
    /** The stored states of these sensors; a sensor with no row is absent from the map. */
    readonly load: (
      sensorIds: ReadonlyArray<SensorId>
    ) => Effect.Effect<ReadonlyMap<SensorId, SensorStateRow>, AlertStateStoreError>
    /**
     * Writes each state if its row is still at the expected revision, and
     * bumps the revision. Fails with `AlertStateConflict` naming the sensors
     * whose rows had moved on (the others are written).
     */
    readonly save: (
      writes: ReadonlyArray<SensorStateWrite>
    ) => Effect.Effect<void, AlertStateStoreError | AlertStateConflict>
    /** The sensors of a log partition whose `check_at` is at or before `now`. */
    readonly due: (logPartition: number, now: number) => Effect.Effect<ReadonlyArray<SensorId>, AlertStateStoreError>
    /** A cheap round trip to the store, for readiness probes. */
    readonly ping: Effect.Effect<void, AlertStateStoreError>
  }
>()("dexmon/ports/alert-store/AlertStateStore") {}
