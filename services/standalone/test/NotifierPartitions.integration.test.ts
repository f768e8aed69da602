import { EventId, SensorId, UserId } from "@dexmon/domain"
import { AlertStateStore, EventLog, partitionForKey, Topics } from "@dexmon/ports"
import { eventually } from "@dexmon/testing"
import { assert, layer } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import { toProducerRecord } from "./support/AlertDay.ts"
import { notifierOnEmbeddedStoresWith } from "./support/NotifierOnEmbeddedStores.ts"

const t0 = Date.parse("2026-11-24T08:00:00.000Z")
const USER = UserId.make("partitions-user")
const PARTITIONS = 2

/** The first sensor id of the form `parted-<n>` that the log puts on `partition`. */
const sensorOn = (partition: number) => {
  for (let n = 0; ; n++) {
    const id = `parted-${n}`
    if (partitionForKey(id, PARTITIONS) === partition) return SensorId.make(id)
  }
}
const SLOW = sensorOn(0)
const FAST = sensorOn(1)

/**
 * The real PostgreSQL state store, except that a write of partition 0's states waits until the test
 * releases it (a slow store round trip for that partition's sensors); `held` says it is waiting.
 */
const gate = { held: Deferred.makeUnsafe<void>(), release: Deferred.makeUnsafe<void>() }
const heldSave =
  (real: AlertStateStore["Service"]): AlertStateStore["Service"]["save"] =>
  (writes) =>
    writes.some((write) => write.log_partition === 0)
      ? Deferred.succeed(gate.held, undefined).pipe(
          Effect.andThen(Deferred.await(gate.release)),
          Effect.andThen(real.save(writes))
        )
      : real.save(writes)

const notifierOnEmbeddedStores = notifierOnEmbeddedStoresWith({
  prefix: "parts",
  partitions: PARTITIONS,
  save: heldSave
})

const reading = (sensor: SensorId, n: number) =>
  toProducerRecord({
    sensor,
    user: USER,
    timestamp: t0,
    value: 120,
    source: "SENSOR",
    eventId: EventId.make(`01900000-0000-7000-8000-${n.toString(16).padStart(12, "0")}`),
    logTime: t0 + 30_000
  })

layer(notifierOnEmbeddedStores, { timeout: 120_000, excludeTestServices: true })("the notifier's partitions", (it) => {
  it.effect("run side by side: a partition's states are written while another partition's write waits", () =>
    Effect.gen(function* () {
      const log = yield* EventLog
      const states = yield* AlertStateStore
      const { names } = yield* Topics
      yield* log.append(names.events, [reading(SLOW, 1), reading(FAST, 2)])
      yield* Deferred.await(gate.held)
      const fast = yield* eventually(states.load([FAST]), (stored) => stored.has(FAST), {
        every: "50 millis",
        times: 200
      })
      assert.strictEqual(fast.get(FAST)?.log_partition, 1)
      assert.isFalse((yield* states.load([SLOW])).has(SLOW), "partition 0's write is still held")
      yield* Deferred.succeed(gate.release, undefined)
      const slow = yield* eventually(states.load([SLOW]), (stored) => stored.has(SLOW), {
        every: "50 millis",
        times: 200
      })
      assert.strictEqual(slow.get(SLOW)?.log_partition, 0)
    })
  )
})
