import { UserId } from "@dexmon/domain"
import { assert, describe, it } from "@effect/vitest"
import { sensorIdOf } from "../src/Entries.ts"
import { deviceStatusOf, deviceStatusOut } from "../src/NightscoutDeviceStatuses.ts"

const alice = UserId.make("alice")
const now = Date.UTC(2026, 10, 30, 12, 0)

describe("deviceStatusOf", () => {
  it("reads xDrip+'s and Loop's uploader battery, and the older uploaderBattery, onto the device's sensor", () => {
    const xdrip = deviceStatusOf(
      alice,
      { device: "xDrip-DexcomG6", created_at: "2026-11-30T12:55:00.000+0100", uploader: { battery: 87 } },
      now
    )
    assert.deepStrictEqual(xdrip, {
      _tag: "Status",
      status: {
        user_id: alice,
        sensor_id: sensorIdOf(alice, "xDrip-DexcomG6"),
        device: "xDrip-DexcomG6",
        created_at: now - 5 * 60_000,
        uploader_battery: 87,
        uploader: '{"battery":87}'
      }
    })
    const older = deviceStatusOf(alice, { device: "share2", uploaderBattery: 40 }, now)
    assert.deepStrictEqual(
      older._tag === "Status" ? [older.status.created_at, older.status.uploader_battery, older.status.uploader] : [],
      [now, 40, null]
    )
  })

  it("takes a status from the future as now, and refuses what is not a status", () => {
    const ahead = deviceStatusOf(alice, { device: "x", created_at: "2026-12-30T12:00:00Z" }, now)
    assert.strictEqual(ahead._tag === "Status" ? ahead.status.created_at : 0, now)
    assert.strictEqual(deviceStatusOf(alice, "battery 50", now)._tag, "Invalid")
    assert.strictEqual(deviceStatusOf(alice, { device: "x", created_at: "yesterday" }, now)._tag, "Invalid")
    assert.strictEqual(deviceStatusOf(alice, { uploader: { name: "x".repeat(5_000) } }, now)._tag, "Invalid")
  })

  it("serves a kept status in Nightscout's shape, with the same _id for the same status", () => {
    const read = deviceStatusOf(alice, { device: "xDrip-DexcomG6", uploader: { battery: 87, name: "phone" } }, now)
    if (read._tag !== "Status") return assert.fail("not a status")
    const served = deviceStatusOut(read.status)
    assert.deepStrictEqual(
      { ...served, _id: undefined },
      {
        _id: undefined,
        device: "xDrip-DexcomG6",
        created_at: "2026-11-30T12:00:00.000Z",
        uploaderBattery: 87,
        uploader: { battery: 87, name: "phone" }
      }
    )
    assert.strictEqual(served._id, deviceStatusOut(read.status)._id)
    assert.match(served._id, /^[0-9a-f]{24}$/)
  })
})
