import { EventId, SensorId, UserId } from "@dexmon/domain"
import { AlertStateStore, EventLog, Topics } from "@dexmon/ports"
import { eventually } from "@dexmon/testing"
import { assert, layer } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Layer, Scope } from "effect"
import { toProducerRecord } from "./support/AlertDay.ts"
import { notifierStoresOnEmbedded, notifierWithDefaultRules } from "./support/NotifierOnEmbeddedStores.ts"

const t0 = Date.parse("2026-11-24T08:00:00.000Z")
const USER = UserId.make("shutdown-user")
const SENSOR = SensorId.make("shutdown-sensor")

/**
 * The real PostgreSQL state store, except that the first write waits until the test releases it (a
 * slow store round trip at the moment the notifier is told to stop); `held` says it is waiting.
 */
const gate = { held: Deferred.makeUnsafe<void>(), release: Deferred.makeUnsafe<void>(), writes: 0 }
const heldSave =
  (real: AlertStateStore["Service"]): AlertStateStore["Service"]["save"] =>
  (writes) =>
    Effect.suspend(() => {
      gate.writes += 1
      return gate.writes === 1
        ? Deferred.succeed(gate.held, undefined).pipe(
            Effect.andThen(Deferred.await(gate.release)),
            Effect.andThen(real.save(writes))
          )
        : real.save(writes)
    })

const stores = notifierStoresOnEmbedded({ prefix: "shutdown", partitions: 1, save: heldSave })

const sum = (offsets: ReadonlyMap<number, number>) => [...offsets.values()].reduce((a, b) => a + b, 0)

layer(stores, { timeout: 120_000, excludeTestServices: true })("the notifier told to stop", (it) => {
  it.effect(
    "mid-batch, between appending a notification and writing the states, finishes the write first: the next notifier redelivers the batch and appends nothing again",
    () =>
      Effect.gen(function* () {
        const log = yield* EventLog
        const states = yield* AlertStateStore
        const { names } = yield* Topics
        const notifications = Effect.map(log.endOffsets(names.alerts), sum)

        const first = yield* Scope.make()
        yield* Layer.buildWithScope(notifierWithDefaultRules, first)
        // An urgent low: one episode, one notification.
        yield* log.append(names.events, [
          toProducerRecord({
            sensor: SENSOR,
            user: USER,
            timestamp: t0,
            value: 50,
            source: "SENSOR",
            eventId: EventId.make("01900000-0000-7000-8000-000000000001"),
            logTime: t0 + 30_000
          })
        ])
        // The notification is appended, and the state write that follows it waits.
        yield* Deferred.await(gate.held)
        assert.strictEqual(yield* notifications, 1)
        // Stop it as SIGTERM does (its layers' scope closes) while the write waits, and release the write once
        // the shutdown is over or has had a second to interrupt it.
        const stopping = yield* Effect.forkChild(Scope.close(first, Exit.void))
        yield* Fiber.await(stopping).pipe(Effect.timeoutOption("1 second"))
        yield* Deferred.succeed(gate.release, undefined)
        yield* Fiber.join(stopping)
        assert.isTrue((yield* states.load([SENSOR])).has(SENSOR), "the state was written before the notifier stopped")

        // The next notifier of the group takes the partition from its last commit.
        const second = yield* Scope.make()
        yield* Layer.buildWithScope(notifierWithDefaultRules, second)
        const end = sum(yield* log.endOffsets(names.events))
        yield* eventually(
          Effect.map(log.committedOffsets("dexmon-notifier", names.events), sum),
          (committed) => committed === end,
          { every: "50 millis", times: 400 }
        )
        yield* Scope.close(second, Exit.void)
        assert.strictEqual(yield* notifications, 1, "the notification was appended once")
      })
  )
})
