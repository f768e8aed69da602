import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import kafkajs, { type RecordMetadata } from "kafkajs"
import { makeRecreatingProducer, type ProducerHandle } from "../src/event-log/RecreatingProducer.ts"

/** A broker's refusal as kafkajs reports it: the protocol error, wrapped once the retrier gives up. */
const brokerSays = (type: string, retriable = false) => {
  const protocol = new kafkajs.KafkaJSProtocolError({ type, code: 0, retriable, message: type } as never)
  // kafkajs's constructor takes the cause as a second argument its types leave out.
  const Wrapper = kafkajs.KafkaJSNonRetriableError as unknown as new (e: Error, options: { cause: Error }) => Error
  return new Wrapper(protocol, { cause: protocol })
}

/**
 * Producers that answer like kafkajs's, in the order they are created: each send of the first producer
 * throws `firstFails`, later producers answer offsets. `connectGate` holds the connect of the producers
 * after the first until it resolves.
 */
const producers = (firstFails: Error | undefined, connectGate: Promise<void> = Promise.resolve()) => {
  const made: Array<{ disconnected: boolean; sends: number }> = []
  const create = (): ProducerHandle => {
    const index = made.length
    const state = { disconnected: false, sends: 0 }
    made.push(state)
    return {
      connect: () => (index === 0 ? Promise.resolve() : connectGate),
      disconnect: () => {
        state.disconnected = true
        return Promise.resolve()
      },
      send: ({ topic, messages }) => {
        state.sends++
        if (index === 0 && firstFails !== undefined) return Promise.reject(firstFails)
        const partition = messages[0]!.partition!
        return Promise.resolve([{ topicName: topic, partition, errorCode: 0, baseOffset: "7" } as RecordMetadata])
      }
    }
  }
  return { create, made }
}

const record = { key: "k", value: new Uint8Array([1]), headers: {} }

describe("RecreatingProducer (a unit test of the replacement policy, with kafkajs's own errors)", () => {
  it.effect.each(["UNKNOWN_PRODUCER_ID", "OUT_OF_ORDER_SEQUENCE_NUMBER", "INVALID_PRODUCER_EPOCH"])(
    "a producer answered %s is replaced by a new one, and the next append goes through it",
    (state) =>
      Effect.gen(function* () {
        const { create, made } = producers(brokerSays(state))
        const producer = yield* makeRecreatingProducer(create)
        const error = yield* producer.send("t", 0, [record]).pipe(Effect.flip)
        assert.match(error.message, new RegExp(state))
        yield* producer.ready
        assert.strictEqual(yield* producer.recreations, 1)
        assert.strictEqual(made.length, 2)
        assert.isTrue(made[0]!.disconnected)
        assert.strictEqual(yield* producer.send("t", 0, [record]), 7)
        assert.deepStrictEqual(
          made.map((m) => m.sends),
          [1, 1]
        )
      })
  )

  // kafkajs rolls a partition's sequence number back when a request fails, though the request may be in
  // the log (a timeout under acks=all, a retriable answer given up on): the same producer would send the
  // next request with that sequence, and the broker would take it for a duplicate and drop it.
  it.effect.each([
    ["a timeout given up on", brokerSays("REQUEST_TIMED_OUT", true)],
    [
      "a lock timeout",
      new (kafkajs.KafkaJSLockTimeout as unknown as new (message: string) => Error)("Timeout while acquiring lock")
    ],
    ["a record too large", brokerSays("MESSAGE_TOO_LARGE")]
  ] as const)("after any other failed request (%s) the producer is replaced too", ([, failure]) =>
    Effect.gen(function* () {
      const { create, made } = producers(failure)
      const producer = yield* makeRecreatingProducer(create)
      yield* producer.send("t", 0, [record]).pipe(Effect.flip)
      yield* producer.ready
      assert.strictEqual(yield* producer.recreations, 1)
      assert.strictEqual(yield* producer.send("t", 0, [record]), 7)
      assert.deepStrictEqual(
        made.map((m) => m.sends),
        [1, 1]
      )
    })
  )

  it.effect("while the replacement cannot connect the producer is not ready (readiness says so), then it is", () =>
    Effect.gen(function* () {
      let open: () => void = () => undefined
      const gate = new Promise<void>((resolve) => {
        open = resolve
      })
      const { create } = producers(brokerSays("UNKNOWN_PRODUCER_ID"), gate)
      const producer = yield* makeRecreatingProducer(create)
      assert.isTrue(yield* producer.isReady)
      yield* producer.send("t", 0, [record]).pipe(Effect.flip)
      assert.isFalse(yield* producer.isReady)
      const refused = yield* producer.send("t", 0, [record]).pipe(Effect.flip)
      assert.match(refused.message, /being replaced/)
      open()
      yield* producer.ready
      assert.isTrue(yield* producer.isReady)
    })
  )
  // Issue 15 asks that the receiver accept again within 5 s of the broker's return. While the broker is
  // away, the replacement producer's connect fails over and over; the time between two tries is the most
  // the receiver can lag behind a broker that is back. Measured on the test clock, not the wall clock.
  it.effect(
    "after a long outage the replacement tries again at most a second apart: a broker back is used within one",
    () =>
      Effect.gen(function* () {
        let brokerBack = false
        let connects = 0
        const create = (): ProducerHandle => {
          const first = connects === 0
          return {
            connect: () => {
              connects++
              return first || brokerBack ? Promise.resolve() : Promise.reject(new Error("Connection refused"))
            },
            disconnect: () => Promise.resolve(),
            send: ({ topic, messages }) =>
              first
                ? Promise.reject(brokerSays("REQUEST_TIMED_OUT", true))
                : Promise.resolve([
                    {
                      topicName: topic,
                      partition: messages[0]!.partition!,
                      errorCode: 0,
                      baseOffset: "9"
                    } as RecordMetadata
                  ])
          }
        }
        const producer = yield* makeRecreatingProducer(create)
        yield* producer.send("t", 0, [record]).pipe(Effect.flip)
        // Ten minutes of outage: every backoff has reached its longest wait.
        yield* TestClock.adjust("10 minutes")
        const triesDuringOutage = connects
        assert.isFalse(yield* producer.isReady)
        brokerBack = true
        const ready = yield* Effect.forkChild(producer.ready)
        yield* TestClock.adjust("1 second")
        assert.isTrue(
          yield* producer.isReady,
          `not connected within a second of the broker's return (${triesDuringOutage} tries in ten minutes of outage)`
        )
        yield* Fiber.join(ready)
        assert.strictEqual(yield* producer.send("t", 0, [record]), 9)
      })
  )

  it.effect("a send given a patience that goes unanswered fails then, and the producer is replaced", () =>
    Effect.gen(function* () {
      let made = 0
      const create = (): ProducerHandle => {
        const index = made++
        return {
          connect: () => Promise.resolve(),
          disconnect: () => Promise.resolve(),
          send: ({ topic }) =>
            index === 0
              ? new Promise<Array<RecordMetadata>>(() => undefined)
              : Promise.resolve([
                  { topicName: topic, partition: 0, errorCode: 0, baseOffset: "7" },
                  { topicName: topic, partition: 1, errorCode: 0, baseOffset: "9" }
                ] as Array<RecordMetadata>)
        }
      }
      const producer = yield* makeRecreatingProducer(create)
      const parts = [
        { partition: 0, records: [record] },
        { partition: 1, records: [record] }
      ]
      const hanging = yield* Effect.forkChild(producer.sendPartitions("t", parts, "10 seconds").pipe(Effect.flip))
      yield* TestClock.adjust("10 seconds")
      const error = yield* Fiber.join(hanging)
      assert.match(error.message, /did not answer a request for 2 partitions of t in 10s/)
      yield* producer.ready
      assert.strictEqual(yield* producer.recreations, 1)
      assert.deepStrictEqual(
        [...(yield* producer.sendPartitions("t", parts, "10 seconds"))],
        [
          [0, 7],
          [1, 9]
        ]
      )
    })
  )
})
