import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Queue } from "effect"
import { TestClock } from "effect/testing"
import {
  type AppendLaneSettings,
  BATCH_OVERHEAD_BYTES,
  makeAppendLanes,
  recordBatchBytes
} from "../src/event-log/AppendLanes.ts"
import type { ProducerRecord } from "../src/index.ts"

const encoder = new TextEncoder()
const record = (key: string, n: number): ProducerRecord => ({
  key,
  value: encoder.encode(JSON.stringify({ n, padding: "x".repeat(60) })),
  headers: { n: String(n) }
})
const records = (key: string, count: number) => Array.from({ length: count }, (_, n) => record(key, n))

interface SentRequest {
  readonly partition: number
  readonly records: ReadonlyArray<ProducerRecord>
}

/**
 * The produce requests as a broker would see them: each answered with the partition's next offset,
 * unless the partition is held (a slow or leaderless partition), when the request waits until released.
 * `started` gets every request as it is sent.
 */
const fakeBroker = Effect.gen(function* () {
  const started = yield* Queue.unbounded<SentRequest>()
  const sent: Array<SentRequest> = []
  const ends = new Map<number, number>()
  const held = new Map<number, Deferred.Deferred<void>>()
  const hold = (partition: number) =>
    Effect.map(Deferred.make<void>(), (gate) => {
      held.set(partition, gate)
      return Deferred.succeed(gate, undefined).pipe(Effect.andThen(Effect.sync(() => held.delete(partition))))
    })
  const send = (_topic: string, partition: number, batch: ReadonlyArray<ProducerRecord>) =>
    Effect.gen(function* () {
      const request = { partition, records: batch }
      yield* Queue.offer(started, request)
      const gate = held.get(partition)
      if (gate !== undefined) yield* Deferred.await(gate)
      sent.push(request)
      const base = ends.get(partition) ?? 0
      ends.set(partition, base + batch.length)
      return base
    })
  return { send, started, sent, hold }
})

/** Waits until `count` records are queued (not yet sent) for `lane` (`topic/partition`): the append is in the queue. */
const queuedReaches = (
  lanes: { readonly queued: Effect.Effect<ReadonlyMap<string, number>> },
  lane: string,
  count: number
) =>
  Effect.gen(function* () {
    while ((yield* lanes.queued).get(lane) !== count) yield* Effect.yieldNow
  })

const settings: AppendLaneSettings = {
  maxQueuedRecords: 1_000,
  appendTimeout: "5 seconds",
  maxBatchBytes: () => 1_048_588
}

describe("AppendLanes", () => {
  it.effect("a partition whose produce requests hang holds up only the appends with records for it", () =>
    Effect.gen(function* () {
      const broker = yield* fakeBroker
      const lanes = yield* makeAppendLanes(broker.send, settings)
      const release = yield* broker.hold(0)
      const stuck = yield* Effect.forkChild(lanes.append("t", records("a", 3), [0, 0, 0]))
      assert.strictEqual((yield* Queue.take(broker.started)).partition, 0)

      const other = yield* lanes.append("t", records("b", 2), [1, 1])
      assert.deepStrictEqual(
        other.map((p) => [p.partition, p.offset]),
        [
          [1, 0],
          [1, 1]
        ]
      )
      assert.isUndefined(stuck.pollUnsafe())

      yield* release
      const landed = yield* Fiber.join(stuck)
      assert.deepStrictEqual(
        landed.map((p) => p.offset),
        [0, 1, 2]
      )
    })
  )

  it.effect("each request stays under the topic's max.message.bytes: larger appends are split, in order", () =>
    Effect.gen(function* () {
      const broker = yield* fakeBroker
      const limit = 4_000
      const lanes = yield* makeAppendLanes(broker.send, { ...settings, maxBatchBytes: () => limit })
      const appends = [records("s", 100), records("s", 100), records("s", 100)]
      const positions = yield* Effect.forEach(
        appends,
        (batch) =>
          lanes.append(
            "t",
            batch,
            batch.map(() => 3)
          ),
        {
          concurrency: "unbounded"
        }
      )
      // Every request within the limit, and 300 records take several of them.
      const sizes = broker.sent.map(
        (request) => BATCH_OVERHEAD_BYTES + request.records.reduce((sum, r) => sum + recordBatchBytes(r), 0)
      )
      assert.isTrue(
        sizes.every((size) => size <= limit),
        `request sizes ${sizes}`
      )
      assert.isTrue(broker.sent.length > 3, `${broker.sent.length} requests`)
      // Each append's records are consecutive in the log, in input order, and the appends follow one another.
      assert.deepStrictEqual(
        positions.flat().map((p) => p.offset),
        Array.from({ length: 300 }, (_, i) => i)
      )
      assert.deepStrictEqual(
        broker.sent.flatMap((request) => request.records),
        appends.flat()
      )
    })
  )

  it.effect(
    "a full queue refuses an append at once, and nothing of it is sent; it takes appends again once drained",
    () =>
      Effect.gen(function* () {
        const broker = yield* fakeBroker
        const lanes = yield* makeAppendLanes(broker.send, { ...settings, maxQueuedRecords: 9 })
        const release = yield* broker.hold(0)
        const inFlight = yield* Effect.forkChild(lanes.append("t", records("a", 5), Array(5).fill(0)))
        yield* Queue.take(broker.started)
        const queued = yield* Effect.forkChild(lanes.append("t", records("b", 8), Array(8).fill(0)))
        yield* queuedReaches(lanes, "t/0", 8)
        // 8 queued + 2 > 9. Partition 1 is not full: an append with records for it and for partition 0 is refused whole.
        const refused = yield* lanes.append("t", records("c", 3), [1, 0, 0]).pipe(Effect.flip)
        assert.strictEqual(refused.appendOutcome, "refused")
        assert.match(refused.message, /queue of appends to t\/0 is full \(9 records\)/)
        assert.strictEqual((yield* lanes.queued).get("t/0"), 8)

        yield* release
        yield* Fiber.join(inFlight)
        yield* Fiber.join(queued)
        const again = yield* lanes.append("t", records("d", 8), Array(8).fill(0))
        assert.strictEqual(again.length, 8)
        assert.deepStrictEqual(
          [...new Set(broker.sent.flatMap((request) => request.records.map((r) => r.key)))],
          ["a", "b", "d"]
        )
      })
  )

  it.effect(
    "an append that times out before it is sent is withdrawn; one already sent says its outcome is unknown",
    () =>
      Effect.gen(function* () {
        const broker = yield* fakeBroker
        const lanes = yield* makeAppendLanes(broker.send, settings)
        const release = yield* broker.hold(0)
        const sentOne = yield* Effect.forkChild(lanes.append("t", records("sent", 2), [0, 0]))
        yield* Queue.take(broker.started)
        const queuedOne = yield* Effect.forkChild(lanes.append("t", records("queued", 2), [0, 0]))
        yield* queuedReaches(lanes, "t/0", 2)
        yield* TestClock.adjust("5 seconds")

        const unknown = yield* Fiber.join(sentOne).pipe(Effect.flip)
        const withdrawn = yield* Fiber.join(queuedOne).pipe(Effect.flip)
        assert.strictEqual(unknown.appendOutcome, "unknown")
        assert.strictEqual(withdrawn.appendOutcome, "withdrawn")
        assert.deepStrictEqual(yield* lanes.queued, new Map([["t/0", 0]]))
        // Out of memory too, while the partition is still stuck: nothing of it is kept until it returns.
        assert.deepStrictEqual(yield* lanes.held, new Map([["t/0", 0]]))

        // The partition comes back: the withdrawn append is never sent, the next one is.
        yield* release
        const next = yield* lanes.append("t", records("next", 1), [0])
        assert.deepStrictEqual(
          broker.sent.map((request) => request.records.map((r) => r.key).join(",")),
          ["sent,sent", "next"]
        )
        assert.strictEqual(next[0]!.offset, 2)
      })
  )

  it.effect("a record larger than max.message.bytes is refused for good, and nothing of its append is sent", () =>
    Effect.gen(function* () {
      const broker = yield* fakeBroker
      const lanes = yield* makeAppendLanes(broker.send, { ...settings, maxBatchBytes: () => 500 })
      const big = { key: "k", value: new Uint8Array(1_000), headers: {} }
      const exit = yield* lanes.append("t", [record("k", 0), big], [0, 0]).pipe(Effect.exit)
      assert.isTrue(Exit.isFailure(exit))
      const error = yield* lanes.append("t", [big], [0]).pipe(Effect.flip)
      assert.isFalse(error.transient)
      assert.strictEqual(broker.sent.length, 0)
    })
  )

  it.effect("requests stay under the producer's batch bytes; a single record above them goes alone", () =>
    Effect.gen(function* () {
      const broker = yield* fakeBroker
      const budget = 1_000
      const lanes = yield* makeAppendLanes(broker.send, { ...settings, maxRequestBytes: budget })
      const large = { key: "s", value: new Uint8Array(1_500), headers: {} }
      const appended = [...records("s", 20), large, ...records("s", 5)]
      const positions = yield* lanes.append(
        "t",
        appended,
        appended.map(() => 0)
      )
      const sizes = broker.sent.map(
        (request) => BATCH_OVERHEAD_BYTES + request.records.reduce((sum, r) => sum + recordBatchBytes(r), 0)
      )
      assert.isTrue(
        broker.sent.every((request, i) => request.records.length === 1 || sizes[i]! <= budget),
        `request sizes ${sizes}`
      )
      assert.isTrue(
        broker.sent.some((request) => request.records.length === 1 && request.records[0] === large),
        "the large record went alone"
      )
      assert.deepStrictEqual(
        positions.map((p) => p.offset),
        appended.map((_, i) => i)
      )
    })
  )

  it.effect("an idle partition waits the linger before it sends, so appends arriving meanwhile share the request", () =>
    Effect.gen(function* () {
      const broker = yield* fakeBroker
      const lanes = yield* makeAppendLanes(broker.send, { ...settings, linger: "20 millis" })
      const first = yield* Effect.forkChild(lanes.append("t", records("a", 1), [0]))
      yield* queuedReaches(lanes, "t/0", 1)
      yield* TestClock.adjust("10 millis")
      assert.strictEqual(broker.sent.length, 0, "nothing is sent within the linger")
      const second = yield* Effect.forkChild(lanes.append("t", records("b", 1), [0]))
      yield* queuedReaches(lanes, "t/0", 2)
      yield* TestClock.adjust("10 millis")
      yield* Fiber.join(first)
      yield* Fiber.join(second)
      assert.deepStrictEqual(
        broker.sent.map((request) => request.records.map((r) => r.key).join(",")),
        ["a,b"]
      )
    })
  )
})
