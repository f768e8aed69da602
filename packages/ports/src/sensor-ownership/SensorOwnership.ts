import type { SensorId, UserId } from "@dexmon/domain"
import { Context, type Effect, type Option, Schema } from "effect"
import { StoreFailureFields } from "../StoreFailure.ts"

export class SensorOwnershipError extends Schema.TaggedError<SensorOwnershipError>()(
  "SensorOwnershipError",
  StoreFailureFields
) {}

/** What a claim did: all of it or nothing. */
export interface Claim {
  /** The sensors that belong to another user; when any do, nothing was claimed. */
  readonly foreign: ReadonlyArray<SensorId>
  /** The sensors this claim made the caller's (they had no owner); what to release if the batch is not accepted. */
  readonly claimed: ReadonlyArray<SensorId>
}

/**
 * Who owns each sensor: the user whose batch first claimed it. The receiver
 * claims a batch's sensors before it accepts the batch and refuses the batch
 * when any of them belongs to someone else; a claim is all or nothing, so a
 * refused batch claims none of its sensors. An owner may release a sensor
 * (a device changing hands); the next batch that posts it claims it again.
 */
export class SensorOwnership extends Context.Service<
  SensorOwnership,
  {
    /**
     * Claims the unowned sensors for `userId` in one transaction, unless any of them belongs to another
     * user (also one claimed concurrently): then nothing is claimed and those are answered.
     */
    readonly claim: (userId: UserId, sensorIds: ReadonlyArray<SensorId>) => Effect.Effect<Claim, SensorOwnershipError>
    /** Releases those of `sensorIds` that `userId` owns (another user's are left alone); answers the ones released. */
    readonly release: (
      userId: UserId,
      sensorIds: ReadonlyArray<SensorId>
    ) => Effect.Effect<ReadonlyArray<SensorId>, SensorOwnershipError>
    /** Who owns the sensor; none for a sensor nobody has claimed (or its owner released). */
    readonly ownerOf: (sensorId: SensorId) => Effect.Effect<Option.Option<UserId>, SensorOwnershipError>
    readonly ping: Effect.Effect<void, SensorOwnershipError>
  }
>()("dexmon/ports/sensor-ownership/SensorOwnership") {}
