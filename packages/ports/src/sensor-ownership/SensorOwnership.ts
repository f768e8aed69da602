import type { SensorId, UserId } from "@dexmon/domain"
import { Context, type Effect, type Option, Schema } from "effect"
import { StoreFailureFields } from "../StoreFailure.ts"

export class SensorOwnershipError extends Schema.TaggedError<SensorOwnershipError>()(
  "SensorOwnershipError",
  StoreFailureFields
) {}

/**
 * Who owns each sensor: the first user who posts a reading for it. The
 * receiver claims a batch's sensors before it accepts the batch, and refuses
 * the batch when any of them belongs to someone else.
 */
export class SensorOwnership extends Context.Service<
  SensorOwnership,
  {
    /** Claims the unowned sensors for `userId`; answers those that already belong to another user. */
    readonly claim: (
      userId: UserId,
      sensorIds: ReadonlyArray<SensorId>
    ) => Effect.Effect<ReadonlyArray<SensorId>, SensorOwnershipError>
    /** Who owns the sensor; none for a sensor nobody has posted. */
    readonly ownerOf: (sensorId: SensorId) => Effect.Effect<Option.Option<UserId>, SensorOwnershipError>
    readonly ping: Effect.Effect<void, SensorOwnershipError>
  }
>()("dexmon/ports/sensor-ownership/SensorOwnership") {}
