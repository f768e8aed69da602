import type { NightscoutDeviceStatus } from "@dexmon/domain"
import { UserId } from "@dexmon/domain"
import { assert, layer } from "@effect/vitest"
import { Effect, type Layer } from "effect"
import { NightscoutDeviceStatusStore } from "../../src/index.ts"

let runCounter = 0
const newRun = () => `nsds${Date.now().toString(36)}${runCounter++}`

const statusOf = (
  user: UserId,
  sensor: string,
  createdAt: number,
  battery: number | null,
  uploader: string | null = null
): NightscoutDeviceStatus => ({
  user_id: user,
  sensor_id: sensor,
  device: `device-of-${sensor}`,
  created_at: createdAt,
  uploader_battery: battery,
  uploader
})

/** The behaviour every layer of the Nightscout device status store port must have. */
export const nightscoutDeviceStatusStoreContract = (
  name: string,
  statusLayer: Layer.Layer<NightscoutDeviceStatusStore, unknown>
) =>
  layer(statusLayer, { timeout: 60_000, excludeTestServices: true })(
    `NightscoutDeviceStatusStore contract: ${name}`,
    (it) => {
      it.effect("keeps each sensor's latest status, whatever order they arrive in; newest first, at most count", () =>
        Effect.gen(function* () {
          const store = yield* NightscoutDeviceStatusStore
          const user = UserId.make(`${newRun()}-alice`)
          const uploader = JSON.stringify({ battery: 80, name: "phone", type: "PHONE" })
          assert.isTrue(yield* store.keep(statusOf(user, "ns-a", 1_000, 90)))
          assert.isTrue(yield* store.keep(statusOf(user, "ns-a", 3_000, 80, uploader)))
          // An older status, arriving late, changes nothing.
          assert.isFalse(yield* store.keep(statusOf(user, "ns-a", 2_000, 85)))
          assert.isTrue(yield* store.keep(statusOf(user, "ns-b", 2_500, null)))
          const latest = yield* store.latest(user, 10)
          assert.deepStrictEqual(
            latest.map((status) => [status.sensor_id, status.created_at, status.uploader_battery, status.device]),
            [
              ["ns-a", 3_000, 80, "device-of-ns-a"],
              ["ns-b", 2_500, null, "device-of-ns-b"]
            ]
          )
          assert.deepStrictEqual(JSON.parse(latest[0]!.uploader!), JSON.parse(uploader))
          assert.isNull(latest[1]!.uploader)
          assert.deepStrictEqual(
            (yield* store.latest(user, 1)).map((status) => status.sensor_id),
            ["ns-a"]
          )
        })
      )

      it.effect("a user's statuses are theirs alone, also for a sensor id another user has too", () =>
        Effect.gen(function* () {
          const store = yield* NightscoutDeviceStatusStore
          const run = newRun()
          const alice = UserId.make(`${run}-alice`)
          const bob = UserId.make(`${run}-bob`)
          yield* store.keep(statusOf(alice, "ns-shared", 1_000, 50))
          yield* store.keep(statusOf(bob, "ns-shared", 2_000, 60))
          assert.deepStrictEqual(
            (yield* store.latest(alice, 10)).map((status) => status.uploader_battery),
            [50]
          )
          assert.deepStrictEqual(
            (yield* store.latest(bob, 10)).map((status) => status.uploader_battery),
            [60]
          )
          assert.deepStrictEqual(yield* store.latest(UserId.make(`${run}-carol`), 10), [])
        })
      )
    }
  )
