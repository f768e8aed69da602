import type { ConsumerRecord, PartitionBatch } from "@dexmon/ports"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Schema, Stream } from "effect"
import { TestClock } from "effect/testing"
import {
  commitBatches,
  deadLetterRecord,
  decodeRecords,
  dedupWithinBatch,
  type RetryPolicy,
  writeWithRetry
} from "../src/index.ts"

const encoder = new TextEncoder()
const record = (offset: number, value: string): ConsumerRecord => ({
  topic: "t",
  partition: 3,
  offset,
  key: `k${offset}`,
  value: encoder.encode(value),
  headers: { origin: "test" },
  timestamp: 0
})
const batchOf = (values: ReadonlyArray<string>, commits: Array<number> = []): PartitionBatch => ({
  topic: "t",
  partition: 3,
  records: values.map((value, i) => record(i, value)),
  commit: Effect.sync(() => {
    commits.push(values.length)
  })
})
const decodeNumber = (bytes: Uint8Array) =>
  Schema.decodeUnknownEffect(Schema.fromJsonString(Schema.Number))(new TextDecoder().decode(bytes))
const policy: RetryPolicy<unknown> = {
  retries: 3,
  initialDelay: 100,
  maxDelay: 1_000,
  isTransient: (error) => error === "store down"
}

describe("decodeRecords", () => {
  it.effect("keeps what decodes and sets aside what does not, with the error", () =>
    Effect.gen(function* () {
      const [out] = yield* Stream.make(batchOf(["1", "{oops", "3"])).pipe(
        decodeRecords(decodeNumber),
        Stream.runCollect
      )
      assert.deepStrictEqual(
        out!.decoded.map((d) => d.value),
        [1, 3]
      )
      assert.strictEqual(out!.failed.length, 1)
      assert.strictEqual(out!.failed[0]!.record.offset, 1)
      assert.strictEqual(out!.failed[0]!.errorTag, "SchemaError")
    })
  )
})

describe("dedupWithinBatch", () => {
  it.effect("keeps the first of each key, in order", () =>
    Effect.gen(function* () {
      const [out] = yield* Stream.make(batchOf(["1", "2", "1", "3", "2"])).pipe(
        decodeRecords(decodeNumber),
        dedupWithinBatch((n) => String(n)),
        Stream.runCollect
      )
      assert.deepStrictEqual(
        out!.decoded.map((d) => [d.value, d.record.offset]),
        [
          [1, 0],
          [2, 1],
          [3, 3]
        ]
      )
    })
  )
})

describe("writeWithRetry", () => {
  it.effect("retries a failing write with backoff until it succeeds, and commits only then", () =>
    Effect.gen(function* () {
      let calls = 0
      const commits: Array<number> = []
      const write = () => Effect.suspend(() => (++calls < 3 ? Effect.fail("store down") : Effect.void))
      const fiber = yield* Stream.make(batchOf(["1", "2"], commits)).pipe(
        decodeRecords(decodeNumber),
        writeWithRetry(write, policy),
        commitBatches,
        Stream.runCollect,
        Effect.forkChild
      )
      yield* TestClock.adjust(10)
      assert.strictEqual(calls, 1)
      assert.deepStrictEqual(commits, [])
      // Jittered exponential backoff: two retries are due within 100 ms + 200 ms, plus jitter.
      yield* TestClock.adjust(1_000)
      const [out] = yield* Fiber.join(fiber)
      assert.strictEqual(calls, 3)
      assert.deepStrictEqual(commits, [2])
      assert.strictEqual(out!.failed.length, 0)
    })
  )

  it.effect("waits out a store that stays down past the bounded retries; nothing reaches the DLQ", () =>
    Effect.gen(function* () {
      let calls = 0
      const commits: Array<number> = []
      const write = () => Effect.suspend(() => (++calls <= 20 ? Effect.fail("store down") : Effect.void))
      const fiber = yield* Stream.make(batchOf(["1", "2"], commits)).pipe(
        decodeRecords(decodeNumber),
        writeWithRetry(write, policy),
        commitBatches,
        Stream.runCollect,
        Effect.forkChild
      )
      yield* TestClock.adjust(60_000)
      assert.deepStrictEqual(commits, [], "not committed while the store is down")
      yield* TestClock.adjust(600_000)
      const [out] = yield* Fiber.join(fiber)
      assert.strictEqual(calls, 21)
      assert.strictEqual(out!.failed.length, 0)
      assert.deepStrictEqual(commits, [2])
    })
  )

  it.effect("after the retries, isolates the value that keeps failing and applies the others", () =>
    Effect.gen(function* () {
      const applied: Array<number> = []
      const write = (values: ReadonlyArray<number>) =>
        values.includes(2)
          ? Effect.fail(new Error("value 2 violates a constraint"))
          : Effect.sync(() => applied.push(...values))
      const fiber = yield* Stream.make(batchOf(["1", "2", "3"])).pipe(
        decodeRecords(decodeNumber),
        writeWithRetry(write, policy),
        Stream.runCollect,
        Effect.forkChild
      )
      yield* TestClock.adjust(60_000)
      const [out] = yield* Fiber.join(fiber)
      assert.deepStrictEqual(applied, [1, 3])
      assert.deepStrictEqual(
        out!.decoded.map((d) => d.value),
        [1, 3]
      )
      assert.strictEqual(out!.failed.length, 1)
      assert.strictEqual(out!.failed[0]!.record.offset, 1)
      assert.strictEqual(out!.failed[0]!.errorMessage, "value 2 violates a constraint")
      assert.strictEqual(out!.failed[0]!.attempts, 8)
    })
  )
})

describe("deadLetterRecord", () => {
  it("keeps the original key, bytes and headers and adds where and why it failed, and its log time", () => {
    const original = { ...record(42, "{oops"), timestamp: Date.parse("2026-11-23T23:58:01.234Z") }
    const letter = deadLetterRecord({
      record: original,
      errorTag: "SchemaError",
      errorMessage: "Expected JSON",
      attempts: 1,
      firstFailureAt: Date.parse("2026-11-24T00:00:00.000Z")
    })
    assert.strictEqual(letter.key, original.key)
    assert.deepStrictEqual(letter.value, original.value)
    assert.deepStrictEqual(letter.headers, {
      origin: "test",
      "dexmon-first-append": "3/42",
      "dlq-error-tag": "SchemaError",
      "dlq-error-message": "Expected JSON",
      "dlq-source-topic": "t",
      "dlq-source-partition": "3",
      "dlq-source-offset": "42",
      "dlq-source-timestamp": "1795478281234",
      "dlq-attempts": "1",
      "dlq-first-failure-at": "2026-11-24T00:00:00.000Z"
    })
  })

  it("keeps the first position of a record that was replayed before", () => {
    const replayed = { ...record(90, "{oops"), headers: { "dexmon-first-append": "3/42" } }
    const letter = deadLetterRecord({
      record: replayed,
      errorTag: "SchemaError",
      errorMessage: "Expected JSON",
      attempts: 1,
      firstFailureAt: 0
    })
    assert.strictEqual(letter.headers["dexmon-first-append"], "3/42")
    assert.strictEqual(letter.headers["dlq-source-offset"], "90")
  })
})
