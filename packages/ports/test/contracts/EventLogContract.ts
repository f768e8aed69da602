import { assert, layer } from "@effect/vitest"
import { Clock, Effect, Fiber, type Layer, Queue, Stream } from "effect"
import {
  type ConsumerRecord,
  EventLog,
  type EventLogError,
  type PartitionBatch,
  type TopicSpec
} from "../../src/index.ts"

/**
 * Topics of this run only: a Kafka cluster is shared with other runs, and a test of log times needs a
 * topic nobody else has written to.
 */
const topicPrefix = `contract-${Date.now().toString(36)}.`

/** The topics the contract suite writes to; a layer under test must create them at start. */
export const contractTopics: ReadonlyArray<TopicSpec> = [
  { name: `${topicPrefix}events`, partitions: 4 },
  { name: `${topicPrefix}other`, partitions: 1 }
]

const topic = `${topicPrefix}events`
/** Written only by the test of `offsetsForTime`, so no other record's log time gets in its way. */
const quietTopic = `${topicPrefix}other`
const partitionCount = contractTopics.find((spec) => spec.name === topic)!.partitions
const encoder = new TextEncoder()
const decoder = new TextDecoder()
let runCounter = 0
/** A prefix that keeps each test's keys apart from the records earlier tests left in the shared topics. */
const newRun = () => `run${Date.now().toString(36)}${runCounter++}`

/**
 * Reads a group's batches until `enough` holds for the records seen so far
 * (only records whose key starts with `prefix` count), committing each batch
 * when `commit` says so. Waits on the records themselves, never on a timer.
 */
const readUntil = (
  groupId: string,
  prefix: string,
  enough: (records: ReadonlyArray<ConsumerRecord>) => boolean,
  commit: (batch: PartitionBatch) => boolean = () => true
) =>
  Effect.gen(function* () {
    const log = yield* EventLog
    const seen: Array<ConsumerRecord> = []
    yield* log.consume({ topic, groupId, maxBatchSize: 7 }).pipe(
      Stream.mapEffect((batch) =>
        Effect.gen(function* () {
          seen.push(...batch.records.filter((record) => record.key.startsWith(prefix)))
          if (commit(batch)) yield* batch.commit
          return enough(seen)
        })
      ),
      Stream.takeUntil((done) => done),
      Stream.runDrain
    )
    return seen
  })

const records = (prefix: string, keys: number, perKey: number) =>
  Array.from({ length: keys * perKey }, (_, i) => ({
    key: `${prefix}-sensor-${i % keys}`,
    value: encoder.encode(JSON.stringify({ n: Math.floor(i / keys) })),
    headers: { "dexmon-test": prefix, n: String(Math.floor(i / keys)) }
  }))

/**
 * Runs a follow in the background and passes on the records of one test (keys starting with `prefix`);
 * `take(n)` waits for the next n of them, and fails if the follow ends first. `chunks` has every chunk
 * the stream emitted (all tests' records), as partition and size.
 */
const followInto = (stream: Stream.Stream<ConsumerRecord, EventLogError>, prefix: string) =>
  Effect.gen(function* () {
    const seen = yield* Queue.unbounded<ConsumerRecord>()
    const chunks: Array<{ readonly partitions: ReadonlySet<number>; readonly size: number }> = []
    const fiber = yield* stream.pipe(
      Stream.chunks,
      Stream.runForEach((chunk) => {
        chunks.push({ partitions: new Set(chunk.map((r) => r.partition)), size: chunk.length })
        return Queue.offerAll(
          seen,
          chunk.filter((record) => record.key.startsWith(prefix))
        )
      }),
      Effect.forkChild
    )
    const take = (n: number) =>
      Effect.raceFirst(
        Queue.takeN(seen, n),
        Fiber.join(fiber).pipe(Effect.andThen(Effect.die(new Error("the follow ended"))))
      )
    return { seen, fiber, take, chunks }
  })

/** `partition:offset` of each, sorted: positions to compare as sets. */
export const positionsOf = (records: ReadonlyArray<{ readonly partition: number; readonly offset: number }>) =>
  records.map((r) => `${r.partition}:${r.offset}`).sort()

/** Asserts that each partition's records came in increasing offset order. */
const assertOffsetOrder = (records: ReadonlyArray<ConsumerRecord>) => {
  const last = new Map<number, number>()
  for (const record of records) {
    const previous = last.get(record.partition) ?? -1
    assert.isTrue(record.offset > previous, `partition ${record.partition}: ${record.offset} after ${previous}`)
    last.set(record.partition, record.offset)
  }
}

/** What an adapter's follows leave on the server: members still in their groups, offsets committed. */
export interface FollowFootprint {
  readonly members: number
  readonly committedOffsets: number
}

export interface EventLogContractOptions {
  /**
   * Measures, on the server, what the adapter's follows hold (Kafka: their throw-away groups), for
   * adapters whose follows hold anything there.
   */
  readonly followFootprint?: Effect.Effect<FollowFootprint, unknown>
}

/** The behaviour every layer of the event-log port must have, run against the layer given. */
export const eventLogContract = (
  name: string,
  eventLogLayer: Layer.Layer<EventLog, unknown>,
  options: EventLogContractOptions = {}
) =>
  layer(eventLogLayer, { timeout: 120_000, excludeTestServices: true })(`EventLog contract: ${name}`, (it) => {
    it.effect("append is durable in input order; one key stays on one partition with increasing offsets", () =>
      Effect.gen(function* () {
        const log = yield* EventLog
        const prefix = newRun()
        const input = records(prefix, 5, 4)
        const positions = yield* log.append(topic, input)
        assert.strictEqual(positions.length, input.length)
        const ends = yield* log.endOffsets(topic)
        for (const position of positions) assert.isTrue(ends.get(position.partition)! > position.offset)
        const byKey = new Map<string, Array<{ partition: number; offset: number }>>()
        input.forEach((record, i) => {
          byKey.set(record.key, [...(byKey.get(record.key) ?? []), positions[i]!])
        })
        for (const [, keyPositions] of byKey) {
          assert.strictEqual(new Set(keyPositions.map((p) => p.partition)).size, 1)
          for (let i = 1; i < keyPositions.length; i++)
            assert.isTrue(keyPositions[i]!.offset > keyPositions[i - 1]!.offset)
        }
      })
    )

    it.effect("a group reads every record once per partition in order, with key, bytes and headers intact", () =>
      Effect.gen(function* () {
        const log = yield* EventLog
        const prefix = newRun()
        const input = records(prefix, 10, 5)
        yield* log.append(topic, input)
        const seen = yield* readUntil(`${prefix}-group`, prefix, (r) => r.length >= input.length)
        assert.strictEqual(seen.length, input.length)
        for (let k = 0; k < 10; k++) {
          const ofKey = seen.filter((record) => record.key === `${prefix}-sensor-${k}`)
          assert.deepStrictEqual(
            ofKey.map((record) => JSON.parse(decoder.decode(record.value)).n),
            [0, 1, 2, 3, 4]
          )
          assert.deepStrictEqual(
            ofKey.map((record) => record.headers.n),
            ["0", "1", "2", "3", "4"]
          )
          assert.strictEqual(ofKey[0]!.headers["dexmon-test"], prefix)
        }
      })
    )

    it.effect("a group resumes after its last commit: committed records are not delivered again, the rest are", () =>
      Effect.gen(function* () {
        const log = yield* EventLog
        const prefix = newRun()
        const group = `${prefix}-group`
        yield* log.append(topic, records(prefix, 1, 20))
        // First member: reads everything, commits only its first batch of this test's records, then crashes.
        let committedThrough = -1
        const first = yield* readUntil(
          group,
          prefix,
          (r) => r.length >= 20,
          (batch) => {
            if (!batch.records.some((r) => r.key.startsWith(prefix))) return true
            if (committedThrough >= 0) return false
            committedThrough = batch.records[batch.records.length - 1]!.offset
            return true
          }
        )
        assert.strictEqual(first.length, 20)
        const committedCount = first.filter((r) => r.offset <= committedThrough).length
        assert.isTrue(committedCount > 0 && committedCount < 20)
        // Second member of the same group: gets exactly the uncommitted records.
        const second = yield* readUntil(group, prefix, (r) => r.length >= 20 - committedCount)
        assert.deepStrictEqual(
          second.map((r) => r.offset),
          first.filter((r) => r.offset > committedThrough).map((r) => r.offset)
        )
        // A different group starts from the beginning.
        const other = yield* readUntil(`${prefix}-other`, prefix, (r) => r.length >= 20)
        assert.strictEqual(other.length, 20)
      })
    )

    it.effect("many concurrent appends, more than the partitions, all land with distinct dense offsets", () =>
      Effect.gen(function* () {
        const log = yield* EventLog
        const prefix = newRun()
        const input = records(prefix, 40, 1)
        const positions = yield* Effect.forEach(input, (record) => log.append(topic, [record]), {
          concurrency: "unbounded"
        }).pipe(Effect.map((all) => all.flat()))
        const keys = new Set(positions.map((p) => `${p.partition}:${p.offset}`))
        assert.strictEqual(keys.size, input.length)
        const seen = yield* readUntil(`${prefix}-group`, prefix, (r) => r.length >= input.length)
        assert.strictEqual(new Set(seen.map((r) => r.key)).size, input.length)
      })
    )

    it.effect(
      "a partition belongs to one member of a group; when the member leaves, another takes over from its commits",
      () =>
        Effect.gen(function* () {
          const log = yield* EventLog
          const prefix = newRun()
          const group = `${prefix}-group`
          const member = (seen: Queue.Queue<ConsumerRecord>) =>
            log.consume({ topic, groupId: group }).pipe(
              Stream.mapEffect((batch) =>
                Effect.andThen(
                  batch.commit,
                  Queue.offerAll(
                    seen,
                    batch.records.filter((r) => r.key.startsWith(prefix))
                  )
                )
              ),
              Stream.runDrain,
              Effect.forkChild
            )
          const wave = (n: number) => records(`${prefix}-w${n}`, 8, 1).map((r) => ({ ...r, key: `${prefix}-${r.key}` }))

          const holderSeen = yield* Queue.unbounded<ConsumerRecord>()
          const holder = yield* member(holderSeen)
          yield* log.append(topic, wave(1))
          yield* Queue.takeN(holderSeen, 8)

          const secondSeen = yield* Queue.unbounded<ConsumerRecord>()
          yield* member(secondSeen)
          yield* log.append(topic, wave(2))
          const holderWave2 = yield* Queue.takeN(holderSeen, 8)
          assert.isTrue(holderWave2.every((r) => r.key.includes("-w2-")))

          yield* Fiber.interrupt(holder)
          yield* log.append(topic, wave(3))
          const secondWave = yield* Queue.takeN(secondSeen, 8)
          assert.isTrue(
            secondWave.every((r) => r.key.includes("-w3-")),
            `the second member saw ${secondWave.map((r) => r.key).join(", ")}`
          )
          assert.strictEqual(yield* Queue.size(secondSeen), 0)
        })
    )

    it.effect("a record keeps the log time it was appended with; one without gets the time of its append", () =>
      Effect.gen(function* () {
        const log = yield* EventLog
        const prefix = newRun()
        const before = yield* Clock.currentTimeMillis
        // A reading from earlier today, as the DLQ replay or a scripted day of traffic appends it.
        const earlier = before - 6 * 60 * 60 * 1_000 - 123
        const [stamped, unstamped] = records(prefix, 2, 1)
        yield* log.append(topic, [{ ...stamped!, timestamp: earlier }, unstamped!])
        const after = yield* Clock.currentTimeMillis
        const seen = yield* readUntil(`${prefix}-group`, prefix, (r) => r.length >= 2)
        const timeOf = (key: string) => seen.find((record) => record.key === key)!.timestamp
        assert.strictEqual(timeOf(stamped!.key), earlier)
        const appendedAt = timeOf(unstamped!.key)
        assert.isTrue(before <= appendedAt && appendedAt <= after, `${appendedAt} not within [${before}, ${after}]`)
      })
    )

    it.effect("committedOffsets: none for a new group; after a commit, the next offset to read per partition", () =>
      Effect.gen(function* () {
        const log = yield* EventLog
        const prefix = newRun()
        const group = `${prefix}-group`
        assert.strictEqual((yield* log.committedOffsets(group, topic)).size, 0)
        yield* log.append(topic, records(prefix, 6, 3))
        const committed = new Map<number, number>()
        yield* readUntil(
          group,
          prefix,
          (r) => r.length >= 18,
          (batch) => {
            committed.set(batch.partition, batch.records[batch.records.length - 1]!.offset + 1)
            return true
          }
        )
        assert.deepStrictEqual(new Map(yield* log.committedOffsets(group, topic)), committed)
        assert.strictEqual((yield* log.committedOffsets(`${prefix}-other`, topic)).size, 0)
      })
    )

    it.effect("onAssigned reports every partition to the only member of a group, and none once it leaves", () =>
      Effect.gen(function* () {
        const log = yield* EventLog
        const prefix = newRun()
        const assignments = yield* Queue.unbounded<ReadonlyArray<number>>()
        const member = yield* log
          .consume({
            topic,
            groupId: `${prefix}-group`,
            onAssigned: (partitions) => {
              Queue.offerUnsafe(assignments, partitions)
            }
          })
          .pipe(Stream.runDrain, Effect.forkChild)
        assert.deepStrictEqual(
          yield* Queue.take(assignments),
          Array.from({ length: partitionCount }, (_, partition) => partition)
        )
        yield* Fiber.interrupt(member)
        assert.deepStrictEqual(yield* Queue.take(assignments), [])
      })
    )

    it.effect(
      "follow reads every partition from the offsets given, records appended before and after it starts, in offset order",
      () =>
        Effect.gen(function* () {
          const log = yield* EventLog
          const prefix = newRun()
          const from = yield* log.endOffsets(topic)
          const before = records(prefix, 8, 3)
          const beforePositions = yield* log.append(topic, before)
          const follower = yield* followInto(log.follow(topic, from, { maxBatchSize: 5 }), prefix)
          const first = yield* follower.take(before.length)
          // The log has nothing more for this test now: the follow waits instead of ending.
          const after = records(`${prefix}-after`, 8, 3)
          const afterPositions = yield* log.append(topic, after)
          const second = yield* follower.take(after.length)

          const seen = [...first, ...second]
          assert.deepStrictEqual(positionsOf(seen), positionsOf([...beforePositions, ...afterPositions]))
          assertOffsetOrder(seen)
          const appended = [...before, ...after]
          const positions = [...beforePositions, ...afterPositions]
          for (const record of seen) {
            const i = positions.findIndex((p) => p.partition === record.partition && p.offset === record.offset)
            assert.strictEqual(record.key, appended[i]!.key)
            assert.deepStrictEqual(
              JSON.parse(decoder.decode(record.value)),
              JSON.parse(decoder.decode(appended[i]!.value))
            )
            assert.deepStrictEqual(record.headers, appended[i]!.headers)
          }
          for (const chunk of follower.chunks) {
            assert.strictEqual(chunk.partitions.size, 1)
            assert.isTrue(chunk.size <= 5, `a chunk of ${chunk.size}`)
          }
        })
    )

    it.effect("follow starts a partition absent from the offsets given at its end: only records appended later", () =>
      Effect.gen(function* () {
        const log = yield* EventLog
        const prefix = newRun()
        const ends = yield* log.endOffsets(topic)
        const before = yield* log.append(topic, records(prefix, 8, 2))
        const chosen = before[0]!.partition
        assert.isTrue(
          before.some((p) => p.partition !== chosen),
          "the records must span more than one partition"
        )
        const follower = yield* followInto(log.follow(topic, new Map([[chosen, ends.get(chosen)!]])), prefix)
        // The chosen partition's records arrive: the follow has begun.
        const first = yield* follower.take(before.filter((p) => p.partition === chosen).length)
        assert.deepStrictEqual(positionsOf(first), positionsOf(before.filter((p) => p.partition === chosen)))
        const after = yield* log.append(topic, records(`${prefix}-after`, 8, 2))
        const second = yield* follower.take(after.length)
        // A partition's earlier records would have come before its later ones: there were none.
        assert.deepStrictEqual(positionsOf(second), positionsOf(after))
        assert.strictEqual(yield* Queue.size(follower.seen), 0)
      })
    )

    it.effect("two follows at once each see every record: they share nothing", () =>
      Effect.gen(function* () {
        const log = yield* EventLog
        const prefix = newRun()
        const from = yield* log.endOffsets(topic)
        const one = yield* followInto(log.follow(topic, from), prefix)
        const other = yield* followInto(log.follow(topic, from), prefix)
        const positions = yield* log.append(topic, records(prefix, 10, 2))
        const [seenByOne, seenByOther] = yield* Effect.all([one.take(positions.length), other.take(positions.length)], {
          concurrency: 2
        })
        assert.deepStrictEqual(positionsOf(seenByOne), positionsOf(positions))
        assert.deepStrictEqual(positionsOf(seenByOther), positionsOf(positions))
        assertOffsetOrder(seenByOne)
        assertOffsetOrder(seenByOther)
      })
    )

    it.effect("leaving a follow releases what it held and commits nothing; a new follow reads the same again", () =>
      Effect.gen(function* () {
        const log = yield* EventLog
        const prefix = newRun()
        const from = yield* log.endOffsets(topic)
        const follower = yield* followInto(log.follow(topic, from), prefix)
        const [position] = yield* log.append(topic, records(prefix, 1, 1))
        yield* follower.take(1)
        if (options.followFootprint !== undefined) {
          const during = yield* options.followFootprint
          // Seen while it runs, so that nothing seen afterwards means it is gone.
          assert.isAtLeast(during.members, 1)
          assert.strictEqual(during.committedOffsets, 0)
        }
        yield* Fiber.interrupt(follower.fiber)
        if (options.followFootprint !== undefined) {
          assert.deepStrictEqual(yield* options.followFootprint, { members: 0, committedOffsets: 0 })
        }
        const again = yield* followInto(log.follow(topic, from), prefix)
        assert.deepStrictEqual(positionsOf(yield* again.take(1)), positionsOf([position!]))
      })
    )

    it.effect("offsetsForTime: the first offset at or after the time per partition, else the end offset", () =>
      Effect.gen(function* () {
        const log = yield* EventLog
        const prefix = newRun()
        const now = yield* Clock.currentTimeMillis
        // One key: both on one partition, the earlier first.
        const [earlier, later] = records(prefix, 1, 2)
        const [first, second] = yield* log.append(quietTopic, [
          { ...earlier!, timestamp: now - 2_000 },
          { ...later!, timestamp: now - 1_000 }
        ])
        assert.strictEqual(second!.offset, first!.offset + 1)
        assert.strictEqual((yield* log.offsetsForTime(quietTopic, now - 1_500)).get(second!.partition), second!.offset)
        assert.strictEqual((yield* log.offsetsForTime(quietTopic, now - 1_000)).get(second!.partition), second!.offset)
        assert.strictEqual((yield* log.offsetsForTime(quietTopic, now - 2_000)).get(first!.partition), first!.offset)
        // After every record's time: each partition's end offset, whether or not it has records.
        const tomorrow = now + 24 * 60 * 60 * 1_000
        assert.deepStrictEqual(
          new Map(yield* log.offsetsForTime(quietTopic, tomorrow)),
          new Map(yield* log.endOffsets(quietTopic))
        )
        yield* log.append(topic, records(prefix, 3, 1))
        const forTopic = yield* log.offsetsForTime(topic, tomorrow)
        assert.deepStrictEqual([...forTopic.keys()].sort(), [0, 1, 2, 3])
        assert.deepStrictEqual(new Map(forTopic), new Map(yield* log.endOffsets(topic)))
        // Following from a time replays from the record at that time.
        const follower = yield* followInto(
          log.follow(quietTopic, yield* log.offsetsForTime(quietTopic, now - 1_500)),
          prefix
        )
        const [replayed] = yield* follower.take(1)
        assert.strictEqual(replayed!.key, later!.key)
        assert.strictEqual(replayed!.timestamp, now - 1_000)
      })
    )

    it.effect("following an unknown topic fails", () =>
      Effect.gen(function* () {
        const log = yield* EventLog
        const error = yield* log.follow("no.such.topic", new Map()).pipe(Stream.runDrain, Effect.flip)
        assert.strictEqual(error._tag, "EventLogError")
        assert.strictEqual((yield* log.offsetsForTime("no.such.topic", 0).pipe(Effect.flip))._tag, "EventLogError")
      })
    )

    it.effect("appending to an unknown topic fails and writes nothing", () =>
      Effect.gen(function* () {
        const log = yield* EventLog
        const error = yield* log.append("no.such.topic", records(newRun(), 1, 1)).pipe(Effect.flip)
        assert.strictEqual(error._tag, "EventLogError")
      })
    )
  })
