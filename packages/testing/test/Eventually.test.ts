import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Ref, Schema } from "effect"
import { TestClock } from "effect/testing"
import { EventuallyTimeout, eventually } from "../src/Eventually.ts"

class NotYet extends Schema.TaggedError<NotYet>()("NotYet", { attempt: Schema.Number }) {}
class Broken extends Schema.TaggedError<Broken>()("Broken", {}) {}

/** A counter that answers 1, 2, 3, ... one more each time it is asked. */
const counter = Effect.map(Ref.make(0), (ref) => Ref.updateAndGet(ref, (n) => n + 1))

/** Runs `effect` while the TestClock is moved on far enough for any poll of these tests to run out. */
const withTimePassing = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.forkChild(effect)
    yield* TestClock.adjust("1 hour")
    return yield* Fiber.await(fiber)
  })

describe("eventually", () => {
  it.effect("answers the first value that satisfies the condition, polling `every` apart", () =>
    Effect.gen(function* () {
      const next = yield* counter
      const exit = yield* withTimePassing(eventually(next, (n) => n === 3, { every: "1 second", times: 5 }))
      assert.deepStrictEqual(exit, Exit.succeed(3))
    })
  )

  it.effect("fails when the polls run out, naming what was awaited, the polls and the last value seen", () =>
    Effect.gen(function* () {
      const next = yield* counter
      const exit = yield* withTimePassing(
        eventually(next, (n) => n > 100, { what: "more than 100 counted", every: "1 second", times: 4 })
      )
      assert.isTrue(Exit.isFailure(exit), "a poll that runs out must fail, not return its last value")
      const error = yield* Effect.flip(exit)
      assert.instanceOf(error, EventuallyTimeout)
      assert.strictEqual(error.message, "never more than 100 counted after 5 polls 1s apart; last seen: 5")
    })
  )

  it.effect("names the condition itself when the caller gave no description", () =>
    Effect.gen(function* () {
      const exit = yield* withTimePassing(
        eventually(Effect.succeed([1, 2]), (items) => items.length === 4, { times: 1 })
      )
      const error = yield* Effect.flip(exit)
      assert.instanceOf(error, EventuallyTimeout)
      assert.include(error.message, "items.length === 4")
      assert.include(error.message, "last seen: [1,2]")
    })
  )

  it.effect("polls again after a failure the caller calls transient, and reports it if it is the last thing seen", () =>
    Effect.gen(function* () {
      const next = yield* counter
      const failing = Effect.flatMap(next, (attempt) => Effect.fail(new NotYet({ attempt })))
      const exit = yield* withTimePassing(
        eventually(failing, () => true, { what: "an answer", times: 2, retry: (error) => error._tag === "NotYet" })
      )
      const error = yield* Effect.flip(exit)
      assert.instanceOf(error, EventuallyTimeout)
      assert.include(error.message, "after 3 polls")
      assert.include(error.message, "NotYet")
      assert.include(error.message, '"attempt":3')
    })
  )

  it.effect("fails at once with any other failure of the query", () =>
    Effect.gen(function* () {
      const next = yield* counter
      const exit = yield* withTimePassing(
        eventually(
          Effect.flatMap(next, () => Effect.fail(new Broken())),
          () => true,
          { times: 10, retry: (error: Broken | NotYet) => error._tag === "NotYet" }
        )
      )
      assert.deepStrictEqual(exit, Exit.fail(new Broken()))
      assert.strictEqual(yield* next, 2, "asked once, not again")
    })
  )

  it.effect("keeps a huge last value short in the message", () =>
    Effect.gen(function* () {
      const exit = yield* withTimePassing(eventually(Effect.succeed("x".repeat(10_000)), () => false, { times: 0 }))
      const error = yield* Effect.flip(exit)
      assert.instanceOf(error, EventuallyTimeout)
      assert.isBelow(error.message.length, 2_200)
      assert.include(error.message, "(10002 characters)")
    })
  )
})
