import { assert, layer } from "@effect/vitest"
import { Clock, Effect, Fiber, type Layer, Queue, Stream } from "effect"
import { type ConsumerRecord, EventLog, type PartitionBatch, type TopicSpec } from "../../src/index.ts"

/** The topics the contract suite writes to; a layer under test must create them at start. */
export const contractTopics: ReadonlyArray<TopicSpec> = [
  { name: "contract.events", partitions: 4 },
  { name: "contract.other", partitions: 1 }
]

const topic = "contract.events"
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

/** The behaviour every layer of the event-log port must have, run against the layer given. */
export const eventLogContract = (name: string, eventLogLayer: Layer.Layer<EventLog, unknown>) =>
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

    it.effect("appending to an unknown topic fails and writes nothing", () =>
      Effect.gen(function* () {
        const log = yield* EventLog
        const error = yield* log.append("no.such.topic", records(newRun(), 1, 1)).pipe(Effect.flip)
        assert.strictEqual(error._tag, "EventLogError")
      })
    )
  })
