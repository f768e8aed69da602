import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit } from "effect"
import { makeServiceProcess } from "../src/processes/ServiceProcess.ts"

// The production profile refuses to fall back to an embedded store, so a receiver given no Kafka exits at start.
const misconfigured = { PATH: process.env.PATH, DEXMON_PROFILE: "production" }

describe("makeServiceProcess", () => {
  it.live(
    "start dies at once, with the service's own output, when the process exits before it is ready",
    () =>
      Effect.gen(function* () {
        const receiver = yield* makeServiceProcess("receiver", misconfigured)
        const exit = yield* Effect.exit(receiver.start)
        assert.isTrue(Exit.isFailure(exit))
        const message = String(Cause.squash((exit as Exit.Failure<never, never>).cause))
        assert.include(message, "receiver exited before it was ready")
        assert.include(message, "KAFKA_BROKERS", "the process's own complaint is in the failure")
        assert.isTrue(receiver.hasEnded())
      }),
    60_000
  )

  it.live(
    "runToExit answers the exit code and everything the process printed",
    () =>
      Effect.gen(function* () {
        const receiver = yield* makeServiceProcess("receiver", misconfigured)
        const exit = yield* receiver.runToExit()
        assert.notStrictEqual(exit.code, 0)
        assert.include(exit.output, "KAFKA_BROKERS")
      }),
    60_000
  )
})
