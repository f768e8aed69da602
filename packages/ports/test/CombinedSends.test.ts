import { assert, describe, it } from "@effect/vitest"
import { Deferred, type Duration, Effect, Fiber } from "effect"
import { type CombinedSendsOptions, makeCombinedSends, type SendPartitions } from "../src/event-log/CombinedSends.ts"
import { EventLogError, type ProducerRecord } from "../src/index.ts"

const record = (key: string): ProducerRecord => ({ key, value: new TextEncoder().encode(key), headers: {} })

/**
 * A send double: logs each request's partitions, answers offset 100 + partition once `gate` lets it
 * (given the request's place and its partitions).
 */
const recordingSend = (
  requests: Array<ReadonlyArray<number>>,
  gate: (request: number, partitions: ReadonlyArray<number>) => Effect.Effect<void>,
  patiences: Array<Duration.Input | undefined> = []
) =>
  ((_topic, parts, patience) =>
    Effect.gen(function* () {
      const partitions = parts.map((part) => part.partition)
      patiences.push(patience)
      const request = requests.push(partitions) - 1
      yield* gate(request, partitions)
      return new Map(parts.map((part) => [part.partition, 100 + part.partition]))
    })) satisfies SendPartitions

/** The combiner's options with every partition in `groupOf`'s group, always ready; counts the give-ups. */
const optionsOf = (
  groupOf: (topic: string, partition: number) => string = () => "broker 1",
  ready: Effect.Effect<void> = Effect.void
) => {
  const gaveUp = { count: 0 }
  return {
    gaveUp,
    options: {
      groupOf,
      ready,
      patience: "10 seconds",
      onGiveUp: Effect.sync(() => {
        gaveUp.count++
      })
    } satisfies CombinedSendsOptions
  }
}

describe("makeCombinedSends", () => {
  it.effect("the partitions of one broker that wait while its request is in flight go together in the next", () =>
    Effect.gen(function* () {
      const requests: Array<ReadonlyArray<number>> = []
      const firstInFlight = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const gate = (request: number) =>
        request === 0
          ? Deferred.succeed(firstInFlight, undefined).pipe(Effect.andThen(Deferred.await(release)))
          : Effect.void
      const patiences: Array<Duration.Input | undefined> = []
      const send = yield* makeCombinedSends(recordingSend(requests, gate, patiences), optionsOf().options)
      const first = yield* Effect.forkChild(send("t", 0, [record("a")]))
      yield* Deferred.await(firstInFlight)
      const others = yield* Effect.forkChild(
        Effect.all([send("t", 1, [record("b")]), send("t", 2, [record("c")]), send("t", 3, [record("d")])], {
          concurrency: "unbounded"
        })
      )
      yield* Effect.yieldNow
      yield* Deferred.succeed(release, undefined)
      assert.strictEqual(yield* Fiber.join(first), 100)
      assert.deepStrictEqual(yield* Fiber.join(others), [101, 102, 103])
      assert.deepStrictEqual(requests, [[0], [1, 2, 3]])
      // Only a request carrying several partitions is given a patience.
      assert.deepStrictEqual(patiences, [undefined, "10 seconds"])
    }).pipe(Effect.scoped)
  )

  it.effect("a broker whose request hangs holds up only the partitions it leads", () =>
    Effect.gen(function* () {
      const requests: Array<ReadonlyArray<number>> = []
      const never = yield* Deferred.make<void>()
      const gate = (_: number, partitions: ReadonlyArray<number>) =>
        partitions.includes(0) ? Deferred.await(never) : Effect.void
      const send = yield* makeCombinedSends(
        recordingSend(requests, gate),
        optionsOf((_, partition) => (partition === 0 ? "broker 1" : "broker 2")).options
      )
      const stuck = yield* Effect.forkChild(send("t", 0, [record("a")]))
      yield* Effect.yieldNow
      assert.strictEqual(yield* send("t", 1, [record("b")]), 101)
      assert.strictEqual(yield* send("t", 2, [record("c")]), 102)
      // Each broker's own request, none waiting for partition 0's.
      assert.deepStrictEqual([...requests].sort(), [[0], [1], [2]])
      yield* Fiber.interrupt(stuck)
    }).pipe(Effect.scoped)
  )

  it.effect("a failed request fails every partition in it; the next request goes on", () =>
    Effect.gen(function* () {
      const requests: Array<ReadonlyArray<number>> = []
      const firstInFlight = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const failing: SendPartitions = (topic, parts) =>
        requests.length === 1
          ? Effect.sync(() => requests.push(parts.map((part) => part.partition))).pipe(
              Effect.andThen(
                Effect.fail(new EventLogError({ operation: "append", message: "timed out", transient: true }))
              )
            )
          : recordingSend(requests, (request) =>
              request === 0
                ? Deferred.succeed(firstInFlight, undefined).pipe(Effect.andThen(Deferred.await(release)))
                : Effect.void
            )(topic, parts, undefined)
      const { options, gaveUp } = optionsOf()
      const send = yield* makeCombinedSends(failing, options)
      const first = yield* Effect.forkChild(send("t", 0, [record("a")]))
      yield* Deferred.await(firstInFlight)
      const failed = yield* Effect.forkChild(
        Effect.all([send("t", 1, [record("b")]).pipe(Effect.flip), send("t", 2, [record("c")]).pipe(Effect.flip)], {
          concurrency: "unbounded"
        })
      )
      yield* Effect.yieldNow
      yield* Deferred.succeed(release, undefined)
      assert.strictEqual(yield* Fiber.join(first), 100)
      const errors = yield* Fiber.join(failed)
      assert.deepStrictEqual(
        errors.map((error) => error.message),
        ["timed out", "timed out"]
      )
      assert.strictEqual(yield* send("t", 3, [record("d")]), 103)
      assert.deepStrictEqual(requests, [[0], [1, 2], [3]])
      assert.strictEqual(gaveUp.count, 1, "the groups are read again after the failed request")
    }).pipe(Effect.scoped)
  )

  it.effect("a request waits until the producer is ready (a replacement connected) before it is sent", () =>
    Effect.gen(function* () {
      const requests: Array<ReadonlyArray<number>> = []
      const connected = yield* Deferred.make<void>()
      const askedReady = yield* Deferred.make<void>()
      const send = yield* makeCombinedSends(
        recordingSend(requests, () => Effect.void),
        optionsOf(undefined, Deferred.succeed(askedReady, undefined).pipe(Effect.andThen(Deferred.await(connected))))
          .options
      )
      const waiting = yield* Effect.forkChild(send("t", 0, [record("a")]))
      yield* Deferred.await(askedReady)
      assert.deepStrictEqual(requests, [], "nothing sent while no producer is ready")
      yield* Deferred.succeed(connected, undefined)
      assert.strictEqual(yield* Fiber.join(waiting), 100)
      assert.deepStrictEqual(requests, [[0]])
    }).pipe(Effect.scoped)
  )

  it.effect("a drain that dies fails what it holds and what waits, and the group takes requests again", () =>
    Effect.gen(function* () {
      const requests: Array<ReadonlyArray<number>> = []
      const send = yield* makeCombinedSends(
        (topic, parts, patience) =>
          requests.length === 0
            ? Effect.sync(() => requests.push([-1])).pipe(Effect.andThen(Effect.die("a bug")))
            : recordingSend(requests, () => Effect.void)(topic, parts, patience),
        optionsOf().options
      )
      const died = yield* send("t", 0, [record("a")]).pipe(Effect.exit)
      assert.isTrue(died._tag === "Failure")
      assert.strictEqual(yield* send("t", 1, [record("b")]), 101)
    }).pipe(Effect.scoped)
  )
})
