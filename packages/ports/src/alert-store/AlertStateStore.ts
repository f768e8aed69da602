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
  /**
   * Orders the sensor's states (see `nextStateVersion`): a write replaces the
   * stored row only when its version is higher, whatever order writes arrive in.
   */
  readonly version: bigint
}

export class AlertStateStoreError extends Schema.TaggedError<AlertStateStoreError>()(
  "AlertStateStoreError",
  StoreFailureFields
) {}

/**
 * The alert engine's durable per-sensor state: one row (one Cassandra
 * partition) per sensor beside the alerts. Reads and writes are at least
 * `LOCAL_QUORUM` whatever the deployment's default consistency, so a notifier
 * that takes over a partition reads every state its predecessor wrote. Writes
 * are last-write-wins by version, not by arrival: a zombie notifier's late
 * write of an older state changes nothing, without a read before the write
 * (a Cassandra lightweight transaction costs two to three plain writes).
 */
export class AlertStateStore extends Context.Service<
  AlertStateStore,
  {
    /** The stored states of these sensors; a sensor with no row is absent from the map. */
    readonly load: (
      sensorIds: ReadonlyArray<SensorId>
    ) => Effect.Effect<ReadonlyMap<SensorId, SensorStateRow>, AlertStateStoreError>
    /**
     * Writes each row unless the store holds the sensor at a higher version
     * (then the write changes nothing, and is no error). A write retried with
     * the same version and content leaves the same row.
     */
    readonly save: (rows: ReadonlyArray<SensorStateRow>) => Effect.Effect<void, AlertStateStoreError>
    /** The sensors of a log partition whose `check_at` is at or before `now`. */
    readonly due: (logPartition: number, now: number) => Effect.Effect<ReadonlyArray<SensorId>, AlertStateStoreError>
    /** A cheap round trip to the store, for readiness probes. */
    readonly ping: Effect.Effect<void, AlertStateStoreError>
  }
>()("dexmon/ports/alert-store/AlertStateStore") {}
