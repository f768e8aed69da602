import { Metrics, TracesExported } from "@dexmon/observability"
import { type ConsumeOptions, EventLog, type PartitionBatch } from "@dexmon/ports"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Option, Queue, Stream, Tracer } from "effect"
import { TestClock } from "effect/testing"
import { type DecodedBatch, runConsumer, writeWithRetry } from "../src/index.ts"

const encoder = new TextEncoder()

/** What the consumer under test did, in the order it did it. */
interface Journal {
  readonly events: Array<string>
}

/** A batch of `size` records of `partition` from `offset`, whose commit is logged and then waits for `commitGate`. */
const batchAt = (
  journal: Journal,
  partition: number,
  offset: number,
  size: number,
  commitGate: Effect.Effect<void> = Effect.void
): PartitionBatch => ({
  topic: "t",
  partition,
  records: Array.from({ length: size }, (_, i) => ({
    topic: "t",
    partition,
    offset: offset + i,
    key: `k${partition}`,
    value: encoder.encode(`${partition}:${offset + i}`),
    headers: {},
    timestamp: 0
  })),
  commit: Effect.sync(() => journal.events.push(`commit ${partition}@${offset}`)).pipe(
    Effect.andThen(commitGate),
    Effect.andThen(Effect.sync(() => journal.events.push(`committed ${partition}@${offset}`)))
  )
})

/**
 * The port with `consume` handing over the given batches in that order, as one stream of every partition
 * (as Kafka's and the embedded log's do), and ending after them; nothing else is used by `runConsumer`.
 */
const eventLogOf = (batches: ReadonlyArray<PartitionBatch>) =>
  EventLog.of({
    append: () => Effect.succeed([]),
    consume: () => Stream.fromIterable(batches),
    endOffsets: () => Effect.succeed(new Map()),
    committedOffsets: () => Effect.succeed(new Map()),
    offsetsForTime: () => Effect.succeed(new Map()),
    follow: () => Stream.empty,
    ping: Effect.void
  })

/** The first offset of the batch a write was given (its values are `partition:offset`). */
const firstOf = (values: ReadonlyArray<string>) => values[0]!

/** Runs `runConsumer` over `batches`, writing each batch with `write`. */
const consume = (
  batches: ReadonlyArray<PartitionBatch>,
  write: (values: ReadonlyArray<string>) => Effect.Effect<void>
) =>
  runConsumer({
    eventLog: eventLogOf(batches),
    topic: "t",
    groupId: "g",
    maxBatchSize: 500,
    decode: (bytes) => Effect.succeed(new TextDecoder().decode(bytes)),
    apply: (decoded: Stream.Stream<DecodedBatch<string>>) =>
      decoded.pipe(writeWithRetry(write, { retries: 0, initialDelay: 1, maxDelay: 1, isTransient: () => false })),
    deadLetterTopic: "t.dlq"
  })

describe("runConsumer", () => {
  it.effect("runs partitions side by side: partition 1 is written and committed while partition 0's write waits", () =>
    Effect.gen(function* () {
      const journal: Journal = { events: [] }
      const release = yield* Deferred.make<void>()
      const partition1Committed = yield* Deferred.make<void>()
      const batches = [
        batchAt(journal, 0, 0, 2),
        batchAt(journal, 1, 0, 2, Deferred.succeed(partition1Committed, undefined))
      ]
      const fiber = yield* consume(batches, (values) =>
        Effect.sync(() => journal.events.push(`write ${firstOf(values)}`)).pipe(
          Effect.andThen(firstOf(values).startsWith("0:") ? Deferred.await(release) : Effect.void)
        )
      ).pipe(Effect.forkChild)

      yield* Deferred.await(partition1Committed)
      assert.includeMembers(journal.events, ["write 0:0", "write 1:0", "commit 1@0"])
      assert.notInclude(journal.events, "commit 0@0", "not committed before its write is done")
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(fiber)
      assert.includeMembers(journal.events, ["commit 0@0", "committed 0@0", "committed 1@0"])
    })
  )

  it.effect(
    "pipelines a partition: batch N+1 is written while N's commit waits; writes and commits keep offset order",
    () =>
      Effect.gen(function* () {
        const journal: Journal = { events: [] }
        const firstCommitStarted = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        const secondWritten = yield* Deferred.make<void>()
        const batches = [
          batchAt(
            journal,
            0,
            0,
            2,
            Deferred.succeed(firstCommitStarted, undefined).pipe(Effect.andThen(Deferred.await(release)))
          ),
          batchAt(journal, 0, 2, 2),
          batchAt(journal, 0, 4, 2)
        ]
        const spans: Array<string> = []
        const fiber = yield* consume(batches, (values) =>
          Effect.gen(function* () {
            journal.events.push(`write ${firstOf(values)}`)
            // The write runs under its batch's span, whichever stage's fiber runs it.
            const span = yield* Effect.option(Effect.currentSpan)
            spans.push(Option.match(span, { onNone: () => "none", onSome: (s) => s.name }))
            if (firstOf(values) === "0:2") yield* Deferred.succeed(secondWritten, undefined)
          })
        ).pipe(Effect.forkChild)

        yield* Deferred.await(firstCommitStarted)
        yield* Deferred.await(secondWritten)
        assert.notInclude(journal.events, "committed 0@0")
        assert.notInclude(journal.events, "commit 0@2", "a batch is not committed before the one before it")
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(fiber)
        assert.deepStrictEqual(
          journal.events.filter((event) => event.startsWith("write")),
          ["write 0:0", "write 0:2", "write 0:4"]
        )
        assert.deepStrictEqual(
          journal.events.filter((event) => event.startsWith("commit")),
          ["commit 0@0", "committed 0@0", "commit 0@2", "committed 0@2", "commit 0@4", "committed 0@4"]
        )
        assert.deepStrictEqual(spans, ["t batch", "t batch", "t batch"])
      })
  )

  it.effect("makes a span per record only when spans are exported; the batch span always", () =>
    Effect.gen(function* () {
      const made: Array<string> = []
      const recording = Tracer.make({
        span: (options) => {
          made.push(options.name)
          return new Tracer.NativeSpan(options)
        }
      })
      const run = (exported: boolean) =>
        consume([batchAt({ events: [] }, 0, 0, 3)], () => Effect.void).pipe(
          Effect.provideService(Tracer.Tracer, recording),
          Effect.provideService(TracesExported, exported)
        )
      yield* run(false)
      assert.deepStrictEqual(
        made.filter((name) => name.startsWith("t ")),
        ["t batch"]
      )
      made.length = 0
      yield* run(true)
      assert.deepStrictEqual(
        made.filter((name) => name.startsWith("t ")),
        ["t process", "t process", "t process", "t batch"]
      )
    })
  )

  it.effect("a partition handed to another member stops being reported in dexmon_consumer_lag", () =>
    Effect.gen(function* () {
      const journal: Journal = { events: [] }
      const group = "lag-after-rebalance"
      const batches = yield* Queue.unbounded<PartitionBatch>()
      let assign: ((partitions: ReadonlyArray<number>) => void) | undefined
      const eventLog = EventLog.of({
        ...eventLogOf([]),
        consume: (options: ConsumeOptions) => {
          assign = options.onAssigned
          return Stream.fromQueue(batches)
        },
        // Ten records in each partition; the consumer commits two of each.
        endOffsets: () =>
          Effect.succeed(
            new Map([
              [0, 10],
              [1, 10]
            ])
          )
      })
      const lagOf = Effect.promise(() => Metrics.consumerLag.get()).pipe(
        Effect.map(({ values }) =>
          values
            .filter((sample) => sample.labels.group === group)
            .map((sample) => `${sample.labels.partition}=${sample.value}`)
            .sort()
        )
      )
      const consumer = yield* Effect.forkChild(
        runConsumer({
          eventLog,
          topic: "t",
          groupId: group,
          maxBatchSize: 500,
          decode: (bytes) => Effect.succeed(new TextDecoder().decode(bytes)),
          apply: (decoded: Stream.Stream<DecodedBatch<string>>) => decoded,
          deadLetterTopic: "t.dlq"
        })
      )
      yield* Effect.yieldNow
      assert.isDefined(assign, "the consumer passes its assignment callback to the event log")
      assign!([0, 1])
      yield* Queue.offerAll(batches, [batchAt(journal, 0, 0, 2), batchAt(journal, 1, 0, 2)])
      while (journal.events.filter((event) => event.startsWith("committed")).length < 2) yield* Effect.yieldNow
      yield* TestClock.adjust("5 seconds")
      assert.deepStrictEqual(yield* lagOf, ["0=8", "1=8"])

      // The group gives partition 0 to another member: its series goes at once, and stays gone, even when a
      // batch of it that was in flight is committed after the handover.
      assign!([1])
      assert.deepStrictEqual(yield* lagOf, ["1=8"])
      yield* Queue.offer(batches, batchAt(journal, 0, 2, 2))
      while (journal.events.filter((event) => event.startsWith("committed")).length < 3) yield* Effect.yieldNow
      yield* TestClock.adjust("5 seconds")
      assert.deepStrictEqual(yield* lagOf, ["1=8"])
      yield* Fiber.interrupt(consumer)
    })
  )
})
