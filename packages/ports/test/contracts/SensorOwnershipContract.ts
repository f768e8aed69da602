import { SensorId, UserId } from "@dexmon/domain"
import { assert, layer } from "@effect/vitest"
import { Effect, type Layer, Option } from "effect"
import { SensorOwnership } from "../../src/index.ts"

let runCounter = 0
const newRun = () => `own${Date.now().toString(36)}${runCounter++}`

/** The behaviour every layer of the sensor-ownership port must have. */
export const sensorOwnershipContract = (name: string, ownershipLayer: Layer.Layer<SensorOwnership, unknown>) =>
  layer(ownershipLayer, { timeout: 60_000, excludeTestServices: true })(`SensorOwnership contract: ${name}`, (it) => {
    it.effect("the first user to claim a sensor owns it; another user's claim names it; the owner's stays clean", () =>
      Effect.gen(function* () {
        const ownership = yield* SensorOwnership
        const run = newRun()
        const [alice, bob] = [UserId.make(`${run}-alice`), UserId.make(`${run}-bob`)]
        const [s1, s2, s3] = [1, 2, 3].map((n) => SensorId.make(`${run}-s${n}`)) as [SensorId, SensorId, SensorId]
        assert.deepStrictEqual(yield* ownership.claim(alice, [s1, s2, s1]), [])
        assert.deepStrictEqual(yield* ownership.claim(alice, [s2, s1]), [])
        assert.deepStrictEqual(yield* ownership.claim(bob, [s3, s1]), [s1])
        // Bob's refused batch still claimed the free sensor s3 for him.
        assert.deepStrictEqual(yield* ownership.claim(alice, [s3]), [s3])
        assert.deepStrictEqual(yield* ownership.claim(bob, [s3]), [])
        assert.deepStrictEqual(
          [yield* ownership.ownerOf(s1), yield* ownership.ownerOf(s3)],
          [Option.some(alice), Option.some(bob)]
        )
        assert.deepStrictEqual(yield* ownership.ownerOf(SensorId.make(`${run}-never-posted`)), Option.none())
        yield* ownership.ping
      })
    )

    it.effect("two users claiming the same new sensors at once: each sensor gets exactly one owner", () =>
      Effect.gen(function* () {
        const ownership = yield* SensorOwnership
        const run = newRun()
        const users = Array.from({ length: 4 }, (_, i) => UserId.make(`${run}-u${i}`))
        const sensors = Array.from({ length: 20 }, (_, i) => SensorId.make(`${run}-s${i}`))
        const refusals = yield* Effect.forEach(users, (user) => ownership.claim(user, sensors), {
          concurrency: "unbounded"
        })
        for (const sensor of sensors) {
          const owners = users.filter((_, i) => !refusals[i]!.includes(sensor))
          assert.strictEqual(owners.length, 1, `${sensor} has owners ${owners.join(", ")}`)
        }
      })
    )
  })
