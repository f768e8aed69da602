import { SensorId, UserId } from "@dexmon/domain"
import { assert, layer } from "@effect/vitest"
import { Effect, type Layer, Option } from "effect"
import { SensorOwnership } from "../../src/index.ts"

let runCounter = 0
const newRun = () => `own${Date.now().toString(36)}${runCounter++}`

const sensorsOf = (run: string, count: number) =>
  Array.from({ length: count }, (_, i) => SensorId.make(`${run}-s${i + 1}`))

/** The behaviour every layer of the sensor-ownership port must have. */
export const sensorOwnershipContract = (name: string, ownershipLayer: Layer.Layer<SensorOwnership, unknown>) =>
  layer(ownershipLayer, { timeout: 60_000, excludeTestServices: true })(`SensorOwnership contract: ${name}`, (it) => {
    it.effect("the first user to claim a sensor owns it; another user's claim names it; the owner's stays clean", () =>
      Effect.gen(function* () {
        const ownership = yield* SensorOwnership
        const run = newRun()
        const [alice, bob] = [UserId.make(`${run}-alice`), UserId.make(`${run}-bob`)]
        const [s1, s2, s3] = sensorsOf(run, 3) as [SensorId, SensorId, SensorId]
        assert.deepStrictEqual(yield* ownership.claim(alice, [s1, s2, s1]), { foreign: [], claimed: [s1, s2] })
        assert.deepStrictEqual(yield* ownership.claim(alice, [s2, s1]), { foreign: [], claimed: [] })
        assert.deepStrictEqual(yield* ownership.claim(bob, [s3]), { foreign: [], claimed: [s3] })
        assert.deepStrictEqual(yield* ownership.claim(alice, [s3, s1]), { foreign: [s3], claimed: [] })
        assert.deepStrictEqual(
          [yield* ownership.ownerOf(s1), yield* ownership.ownerOf(s3)],
          [Option.some(alice), Option.some(bob)]
        )
        assert.deepStrictEqual(yield* ownership.ownerOf(SensorId.make(`${run}-never-posted`)), Option.none())
        yield* ownership.ping
      })
    )

    it.effect("a claim with a foreign sensor claims none of its new sensors", () =>
      Effect.gen(function* () {
        const ownership = yield* SensorOwnership
        const run = newRun()
        const [alice, bob] = [UserId.make(`${run}-alice`), UserId.make(`${run}-bob`)]
        const [aliceSensor, fresh1, fresh2] = sensorsOf(run, 3) as [SensorId, SensorId, SensorId]
        yield* ownership.claim(alice, [aliceSensor])
        assert.deepStrictEqual(yield* ownership.claim(bob, [fresh1, aliceSensor, fresh2]), {
          foreign: [aliceSensor],
          claimed: []
        })
        assert.deepStrictEqual(
          [yield* ownership.ownerOf(fresh1), yield* ownership.ownerOf(fresh2)],
          [Option.none(), Option.none()]
        )
        // So the new sensors are still free: Alice's next batch claims them.
        assert.deepStrictEqual(yield* ownership.claim(alice, [fresh2, fresh1]), {
          foreign: [],
          claimed: [fresh1, fresh2]
        })
      })
    )

    it.effect("two users claiming the same new sensors at once: one claim takes them all, the others none", () =>
      Effect.gen(function* () {
        const ownership = yield* SensorOwnership
        const run = newRun()
        const users = Array.from({ length: 4 }, (_, i) => UserId.make(`${run}-u${i}`))
        const sensors = sensorsOf(run, 20)
        const claims = yield* Effect.forEach(users, (user) => ownership.claim(user, sensors), {
          concurrency: "unbounded"
        })
        const winners = users.filter((_, i) => claims[i]!.foreign.length === 0)
        assert.strictEqual(winners.length, 1, JSON.stringify(claims))
        for (const [i, claim] of claims.entries()) {
          if (users[i] === winners[0]) assert.deepStrictEqual([...claim.claimed].sort(), [...sensors].sort())
          else assert.deepStrictEqual(claim, { foreign: sensors, claimed: [] })
        }
        for (const sensor of sensors) assert.deepStrictEqual(yield* ownership.ownerOf(sensor), Option.some(winners[0]!))
      })
    )

    it.effect("overlapping claims at once: each sensor gets exactly one owner, and no claim is partial", () =>
      Effect.gen(function* () {
        const ownership = yield* SensorOwnership
        // Connections opened first, so the claims below run at once rather than one per new connection.
        yield* Effect.all(
          Array.from({ length: 8 }, () => ownership.ping),
          { concurrency: "unbounded" }
        )
        for (let round = 0; round < 10; round++) {
          const run = newRun()
          const sensors = sensorsOf(run, 30)
          // Each user's batch overlaps the next one's by half.
          const batches = Array.from({ length: 5 }, (_, i) => ({
            user: UserId.make(`${run}-u${i}`),
            sensors: sensors.slice(i * 5, i * 5 + 10)
          }))
          const claims = yield* Effect.forEach(batches, ({ user, sensors }) => ownership.claim(user, sensors), {
            concurrency: "unbounded"
          })
          for (const [i, { user, sensors: batch }] of batches.entries()) {
            const claim = claims[i]!
            const owners = yield* Effect.forEach(batch, (sensor) => ownership.ownerOf(sensor))
            if (claim.foreign.length === 0) {
              assert.deepStrictEqual(
                owners,
                batch.map(() => Option.some(user)),
                `${user} was answered no foreign sensor`
              )
            } else {
              assert.deepStrictEqual(claim.claimed, [], `${user} was refused yet claimed`)
              assert.isFalse(
                owners.some((owner) => Option.isSome(owner) && owner.value === user),
                `${user} was refused yet owns part of its batch`
              )
            }
          }
        }
      })
    )

    it.effect(
      "an owner releases a sensor; another user's release changes nothing; a released sensor is claimed anew",
      () =>
        Effect.gen(function* () {
          const ownership = yield* SensorOwnership
          const run = newRun()
          const [alice, bob] = [UserId.make(`${run}-alice`), UserId.make(`${run}-bob`)]
          const [s1, s2] = sensorsOf(run, 2) as [SensorId, SensorId]
          yield* ownership.claim(alice, [s1, s2])
          assert.deepStrictEqual(yield* ownership.release(bob, [s1]), [])
          assert.deepStrictEqual(yield* ownership.ownerOf(s1), Option.some(alice))
          assert.deepStrictEqual(yield* ownership.release(alice, [s1, SensorId.make(`${run}-never-posted`)]), [s1])
          assert.deepStrictEqual(yield* ownership.ownerOf(s1), Option.none())
          assert.deepStrictEqual(yield* ownership.ownerOf(s2), Option.some(alice), "only the named sensor is released")
          assert.deepStrictEqual(yield* ownership.release(alice, [s1]), [], "released once")
          assert.deepStrictEqual(yield* ownership.claim(bob, [s1]), { foreign: [], claimed: [s1] })
          assert.deepStrictEqual(yield* ownership.claim(alice, [s1]), { foreign: [s1], claimed: [] })
          assert.deepStrictEqual(yield* ownership.ownerOf(s1), Option.some(bob))
        })
    )
  })
