import type { NightscoutDeviceStatus, UserId } from "@dexmon/domain"
import { Context, type Effect, Schema } from "effect"
import { StoreFailureFields } from "../StoreFailure.ts"

export class NightscoutDeviceStatusStoreError extends Schema.TaggedError<NightscoutDeviceStatusStoreError>()(
  "NightscoutDeviceStatusStoreError",
  StoreFailureFields
) {}

/**
 * The latest device status of each of a user's Nightscout uploaders' sensors (battery, uploader): one row per
 * sensor, kept on it as its uploader reports it.
 */
export class NightscoutDeviceStatusStore extends Context.Service<
  NightscoutDeviceStatusStore,
  {
    /** Keeps the status as its sensor's latest; one older than the kept one changes nothing (false). */
    readonly keep: (status: NightscoutDeviceStatus) => Effect.Effect<boolean, NightscoutDeviceStatusStoreError>
    /** The user's sensors' latest statuses, newest first, at most `count`. */
    readonly latest: (
      userId: UserId,
      count: number
    ) => Effect.Effect<ReadonlyArray<NightscoutDeviceStatus>, NightscoutDeviceStatusStoreError>
  }
>()("dexmon/ports/nightscout/NightscoutDeviceStatusStore") {}
