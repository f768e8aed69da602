import { createHash } from "node:crypto"
import { type NightscoutDeviceStatusOut, ServiceUnavailable, ValidationError } from "@dexmon/api"
import type { NightscoutDeviceStatus, UserId } from "@dexmon/domain"
import { NightscoutDeviceStatusStore, type NightscoutDeviceStatusStoreError } from "@dexmon/ports"
import { Clock, Context, Effect, Layer } from "effect"
import { parseDateString, sensorIdOf } from "./Entries.ts"

/** The most of an uploader object kept: what uploaders send is a few fields (battery, name, type). */
const MAX_UPLOADER_BYTES = 4_096

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** The `_id` of a kept status: from its sensor and time, so the same status has the same id. */
const statusIdOf = (status: NightscoutDeviceStatus) =>
  createHash("sha256").update(`${status.sensor_id}\n${status.created_at}\ndevicestatus`).digest("hex").slice(0, 24)

/**
 * The device status a posted one is, or why it cannot be read: its sensor (from the user and `device`, as its
 * entries'), its time (`created_at`, else now), the uploader's battery (`uploader.battery`, or the older
 * `uploaderBattery`) and its `uploader` object.
 */
export const deviceStatusOf = (
  userId: UserId,
  posted: unknown,
  now: number
):
  | { readonly _tag: "Status"; readonly status: NightscoutDeviceStatus }
  | { readonly _tag: "Invalid"; readonly message: string } => {
  if (!isRecord(posted)) return { _tag: "Invalid", message: "a device status must be a JSON object" }
  const device = typeof posted.device === "string" && posted.device !== "" ? posted.device : undefined
  const createdAt = typeof posted.created_at === "string" ? parseDateString(posted.created_at) : undefined
  if (posted.created_at !== undefined && createdAt === undefined) {
    return { _tag: "Invalid", message: "created_at must be an ISO-8601 date and time with an offset" }
  }
  const uploader = isRecord(posted.uploader) ? posted.uploader : undefined
  const battery = uploader?.battery ?? posted.uploaderBattery
  const uploaderText = uploader === undefined ? null : JSON.stringify(uploader)
  if (uploaderText !== null && Buffer.byteLength(uploaderText) > MAX_UPLOADER_BYTES) {
    return { _tag: "Invalid", message: `uploader is larger than ${MAX_UPLOADER_BYTES} bytes` }
  }
  return {
    _tag: "Status",
    status: {
      user_id: userId,
      sensor_id: sensorIdOf(userId, device),
      device: device ?? "unknown",
      created_at: Math.min(createdAt ?? now, now),
      uploader_battery: typeof battery === "number" && Number.isFinite(battery) ? battery : null,
      uploader: uploaderText
    }
  }
}

/** A kept status in Nightscout's shape. */
export const deviceStatusOut = (status: NightscoutDeviceStatus): NightscoutDeviceStatusOut => ({
  _id: statusIdOf(status),
  device: status.device,
  created_at: new Date(status.created_at).toISOString(),
  ...(status.uploader_battery === null ? {} : { uploaderBattery: status.uploader_battery }),
  ...(status.uploader === null ? {} : { uploader: JSON.parse(status.uploader) as unknown })
})

const storeUnavailable = (error: NightscoutDeviceStatusStoreError) =>
  Effect.logError("the Nightscout device status store failed", error).pipe(
    Effect.andThen(Effect.fail(new ServiceUnavailable({ message: "device statuses are unavailable; retry later" })))
  )

/**
 * Nightscout's device statuses: what an uploader says of itself (battery, uploader), kept as the latest of the
 * sensor its `device` names, and read back newest first.
 */
export class NightscoutDeviceStatuses extends Context.Service<
  NightscoutDeviceStatuses,
  {
    /** Keeps each posted status on its sensor; answers them as posted, each with `_id`. */
    readonly post: (
      userId: UserId,
      body: unknown
    ) => Effect.Effect<ReadonlyArray<Record<string, unknown>>, ValidationError | ServiceUnavailable>
    readonly latest: (
      userId: UserId,
      count: number
    ) => Effect.Effect<ReadonlyArray<NightscoutDeviceStatusOut>, ServiceUnavailable>
  }
>()("dexmon/nightscout/NightscoutDeviceStatuses") {
  static readonly layer = Layer.effect(
    NightscoutDeviceStatuses,
    Effect.gen(function* () {
      const store = yield* NightscoutDeviceStatusStore

      const post = Effect.fn("NightscoutDeviceStatuses.post")(function* (userId: UserId, body: unknown) {
        const now = yield* Clock.currentTimeMillis
        const items: ReadonlyArray<unknown> = Array.isArray(body) ? body : [body]
        const read = items.map((item) => deviceStatusOf(userId, item, now))
        const issues = read.flatMap((each, index) =>
          each._tag === "Invalid" ? [{ path: Array.isArray(body) ? `[${index}]` : "", message: each.message }] : []
        )
        if (issues.length > 0) return yield* ValidationError.fromIssues("payload", issues)
        const statuses = read.flatMap((each) => (each._tag === "Status" ? [each.status] : []))
        yield* Effect.forEach(statuses, store.keep, { discard: true }).pipe(
          Effect.catchTag("NightscoutDeviceStatusStoreError", storeUnavailable)
        )
        return statuses.map((status, index) => ({
          ...(items[index] as Record<string, unknown>),
          _id: statusIdOf(status),
          dexmon: { sensor_id: status.sensor_id, uploader_battery: status.uploader_battery }
        }))
      })

      const latest = Effect.fn("NightscoutDeviceStatuses.latest")(function* (userId: UserId, count: number) {
        const kept = yield* store
          .latest(userId, count)
          .pipe(Effect.catchTag("NightscoutDeviceStatusStoreError", storeUnavailable))
        return kept.map(deviceStatusOut)
      })

      return NightscoutDeviceStatuses.of({ post, latest })
    })
  )
}
