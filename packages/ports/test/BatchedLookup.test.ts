import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Queue, Scope } from "effect"
import { makeBatchedLookup } from "../src/postgres/BatchedLookup.ts"

/**
 * A store whose every lookup answers each key with the lookup's number (1, 2, ...), and waits for a
 * go-ahead from the test when `gated`: `asked` gets each lookup's keys as it starts.
 */
const fakeStore = Effect.gen(function* () {
  const asked = yield* Queue.unbounded<ReadonlyArray<string>>()
  const gates: Array<Deferred.Deferred<void, string>> = []
  let lookups = 0
  let gated = false
  const lookup = (keys: ReadonlyArray<string>) =>
    Effect.gen(function* () {
      const round = ++lookups
      yield* Queue.offer(asked, keys)
      if (gated) {
        const gate = yield* Deferred.make<void, string>()
        gates.push(gate)
        yield* Deferred.await(gate)
      }
      return new Map(keys.map((key) => [key, round]))
    })
  return {
    lookup,
    asked,
    gate: () => {
      gated = true
    },
    open: (index: number, outcome: Exit.Exit<void, string> = Exit.void) => Deferred.done(gates[index]!, outcome),
    lookups: () => lookups
  }
})

describe("makeBatchedLookup", () => {
  it.effect("concurrent callers share one lookup of all their keys, and each reads its own", () =>
    Effect.gen(function* () {
      const store = yield* fakeStore
      const lookup = yield* makeBatchedLookup(store.lookup)
      const callers = Array.from({ length: 20 }, (_, i) => [`k${i}`, `k${(i + 1) % 20}`])
      const answers = yield* Effect.forEach(callers, lookup, { concurrency: "unbounded" })
      assert.strictEqual(store.lookups(), 1)
      assert.deepStrictEqual([...(yield* Queue.take(store.asked))].sort(), [...new Set(callers.flat())].sort())
      for (const [i, keys] of callers.entries()) {
        assert.deepStrictEqual(
          keys.map((key) => answers[i]!.get(key)),
          [1, 1]
        )
      }
    })
  )

  it.effect("a caller that asks while a lookup is in flight is answered by the next one, not that one", () =>
    Effect.gen(function* () {
      const store = yield* fakeStore
      store.gate()
      const lookup = yield* makeBatchedLookup(store.lookup)
      const first = yield* Effect.forkChild(lookup(["a"]))
      assert.deepStrictEqual(yield* Queue.take(store.asked), ["a"])
      // Asked after the first lookup was sent: a write answered before now must show, so that lookup cannot do.
      const second = yield* Effect.forkChild(lookup(["a", "b"]))
      const third = yield* Effect.forkChild(lookup(["c"]))
      yield* store.open(0)
      assert.strictEqual((yield* Fiber.join(first)).get("a"), 1)
      assert.deepStrictEqual([...(yield* Queue.take(store.asked))].sort(), ["a", "b", "c"])
      yield* store.open(1)
      assert.strictEqual((yield* Fiber.join(second)).get("a"), 2)
      assert.strictEqual((yield* Fiber.join(third)).get("c"), 2)
    })
  )

  it.effect("a failed lookup fails every caller of its round; the next round is looked up afresh", () =>
    Effect.gen(function* () {
      const store = yield* fakeStore
      store.gate()
      const lookup = yield* makeBatchedLookup(store.lookup)
      const blocker = yield* Effect.forkChild(lookup(["a"]))
      yield* Queue.take(store.asked)
      const failing = yield* Effect.forEach(["b", "c"], (key) => Effect.forkChild(lookup([key])))
      yield* store.open(0)
      yield* Fiber.join(blocker)
      yield* Queue.take(store.asked)
      yield* store.open(1, Exit.fail("store down"))
      for (const fiber of failing) assert.deepStrictEqual(yield* Fiber.await(fiber), Exit.fail("store down"))
      const later = yield* Effect.forkChild(lookup(["b"]))
      yield* Queue.take(store.asked)
      yield* store.open(2)
      assert.strictEqual((yield* Fiber.join(later)).get("b"), 3)
    })
  )

  it.effect("when the store closes, callers in flight and waiting are interrupted, not left waiting", () =>
    Effect.gen(function* () {
      const store = yield* fakeStore
      store.gate()
      const scope = yield* Scope.make()
      const lookup = yield* makeBatchedLookup(store.lookup).pipe(Scope.provide(scope))
      const inFlight = yield* Effect.forkChild(lookup(["a"]))
      yield* Queue.take(store.asked)
      const waiting = yield* Effect.forkChild(lookup(["b"]))
      yield* Effect.yieldNow
      yield* Scope.close(scope, Exit.void)
      assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(inFlight)))
      assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(waiting)))
    })
  )

  it.effect("a round takes callers while their keys fit; one caller with more keys goes alone", () =>
    Effect.gen(function* () {
      const store = yield* fakeStore
      const lookup = yield* makeBatchedLookup(store.lookup, 4)
      const callers = [["a", "b"], ["c"], ["d", "e"], ["f", "g", "h", "i", "j"], ["k"]]
      const answers = yield* Effect.forEach(callers, lookup, { concurrency: "unbounded" })
      const rounds = yield* Queue.takeAll(store.asked)
      assert.deepStrictEqual(
        [...rounds].map((keys) => [...keys]),
        [["a", "b", "c"], ["d", "e"], ["f", "g", "h", "i", "j"], ["k"]]
      )
      assert.deepStrictEqual(
        answers.map((answer, i) => answer.get(callers[i]![0]!)),
        [1, 1, 2, 3, 4]
      )
    })
  )
})
