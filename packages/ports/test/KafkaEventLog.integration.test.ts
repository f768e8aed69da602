import { assert, layer } from "@effect/vitest"
import { ConfigProvider, Deferred, Effect, Layer, Option, Queue, Schedule, Stream } from "effect"
import { Kafka, logLevel } from "kafkajs"
import { type ConsumerRecord, EventLog, KafkaEventLog, type PartitionBatch, Topics } from "../src/index.ts"
import { requiredServer } from "../src/testing/index.ts"
import { contractTopics, eventLogContract, positionsOf } from "./contracts/EventLogContract.ts"

const brokers = requiredServer("KAFKA_BROKERS")
/** A client id of this run's own: other runs on the same cluster follow too, and their groups are not ours to count. */
const clientId = `contract-${Date.now().toString(36)}`

const kafkaLayer = KafkaEventLog.layer.pipe(
  Layer.provide(Topics.exactly(contractTopics)),
  Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord({ ...process.env, KAFKA_CLIENT_ID: clientId })))
)

/** A kafkajs client of the test's own, beside the adapter's, so the adapter cannot answer for itself. */
const probeClient = () =>
  new Kafka({ clientId: "contract-probe", brokers: brokers.split(","), logLevel: logLevel.NOTHING })

const probeAdmin = Effect.acquireRelease(
  Effect.sync(() => probeClient().admin()).pipe(Effect.tap((admin) => Effect.promise(() => admin.connect()))),
  (admin) => Effect.promise(() => admin.disconnect())
)

/** The ids of this run's follow groups that the broker knows. */
const followGroups = Effect.gen(function* () {
  const admin = yield* probeAdmin
  const { groups } = yield* Effect.promise(() => admin.listGroups())
  return groups.map((group) => group.groupId).filter((id) => id.startsWith(KafkaEventLog.followGroupPrefix(clientId)))
})

/** The follows' throw-away groups as the broker sees them: members still joined, offsets committed. */
const followFootprint = Effect.gen(function* () {
  const admin = yield* probeAdmin
  const ids = yield* followGroups
  if (ids.length === 0) return { members: 0, committedOffsets: 0 }
  const described = yield* Effect.promise(() => admin.describeGroups(ids))
  const offsets = yield* Effect.forEach(ids, (groupId) => Effect.promise(() => admin.fetchOffsets({ groupId })), {
    concurrency: 4
  })
  return {
    members: described.groups.reduce((sum, group) => sum + group.members.length, 0),
    // Kafka answers -1 for a partition without a commit.
    committedOffsets: offsets
      .flat()
      .flatMap((topic) => topic.partitions)
      .filter((partition) => Number(partition.offset) >= 0).length
  }
}).pipe(Effect.scoped)

eventLogContract(`Kafka at ${brokers}`, kafkaLayer, { followFootprint })

layer(kafkaLayer, { timeout: 120_000, excludeTestServices: true })("KafkaEventLog.follow", (it) => {
  it.effect("a rejoin of the follow's group (a rebalance) neither skips nor repeats a record", () =>
    Effect.gen(function* () {
      const log = yield* EventLog
      const topic = contractTopics[0]!.name
      const prefix = `rejoin${Date.now().toString(36)}`
      const wave = (n: number) =>
        Array.from({ length: 8 }, (_, i) => ({
          key: `${prefix}-w${n}-sensor-${i}`,
          value: new TextEncoder().encode(String(i)),
          headers: {}
        }))
      const seen = yield* Queue.unbounded<ConsumerRecord>()
      yield* log.follow(topic, yield* log.endOffsets(topic)).pipe(
        Stream.filter((record) => record.key.startsWith(prefix)),
        Stream.runForEach((record) => Queue.offer(seen, record)),
        Effect.forkChild
      )
      const first = yield* log.append(topic, wave(1))
      const seenFirst = yield* Queue.takeN(seen, first.length)

      // Another member joins the follow's group (nothing else knows its id): a rebalance takes partitions away.
      const [groupId, ...others] = yield* followGroups
      assert.strictEqual(others.length, 0)
      const intruder = probeClient().consumer({ groupId: groupId! })
      const taken = new Set<number>()
      intruder.on(intruder.events.GROUP_JOIN, (event) => {
        taken.clear()
        for (const partition of event.payload.memberAssignment[topic] ?? []) taken.add(partition)
      })
      yield* Effect.acquireRelease(
        Effect.promise(() => intruder.connect()),
        () => Effect.promise(() => intruder.disconnect())
      )
      yield* Effect.promise(() => intruder.subscribe({ topic }))
      yield* Effect.promise(() => intruder.run({ autoCommit: false, eachBatch: () => Promise.resolve() }))
      assert.isTrue(taken.size > 0 && taken.size < contractTopics[0]!.partitions, `the intruder took ${[...taken]}`)

      const second = yield* log.append(topic, wave(2))
      const kept = second.filter((p) => !taken.has(p.partition))
      const seenWhileShared = yield* Queue.takeN(seen, kept.length)
      assert.deepStrictEqual(positionsOf(seenWhileShared), positionsOf(kept))

      // The intruder leaves: the follow rejoins, gets every partition back and resumes where it was.
      yield* Effect.promise(() => intruder.disconnect())
      const seenAfter = yield* Queue.takeN(seen, second.length - kept.length)
      assert.deepStrictEqual(positionsOf(seenAfter), positionsOf(second.filter((p) => taken.has(p.partition))))
      const third = yield* log.append(topic, wave(3))
      const seenThird = yield* Queue.takeN(seen, third.length)
      assert.deepStrictEqual(positionsOf(seenThird), positionsOf(third))
      assert.strictEqual(yield* Queue.size(seen), 0)
      const all = [...seenFirst, ...seenWhileShared, ...seenAfter, ...seenThird]
      assert.strictEqual(new Set(positionsOf(all)).size, all.length)
    })
  )
})

layer(kafkaLayer, { timeout: 120_000, excludeTestServices: true })("KafkaEventLog.consume", (it) => {
  it.effect(
    "a member joining waits until the batches handed to the current member are committed: no record is in both members' hands",
    () =>
      Effect.gen(function* () {
        const log = yield* EventLog
        const admin = yield* probeAdmin
        const topic = contractTopics[0]!.name
        const groupId = `handover${Date.now().toString(36)}`
        const wave = (n: number) =>
          Array.from({ length: 32 }, (_, i) => ({
            key: `${groupId}-w${n}-sensor-${i}`,
            value: new TextEncoder().encode(String(i)),
            headers: {}
          }))
        yield* log.append(topic, wave(1))

        // The first member takes every batch it is given at once (as a pipeline with buffers between its stages
        // does) and commits none of them until `release`.
        const release = yield* Deferred.make<void>()
        const firstTook = yield* Deferred.make<void>()
        const first: Array<PartitionBatch> = []
        const toCommit = yield* Queue.unbounded<PartitionBatch>()
        yield* log.consume({ topic, groupId }).pipe(
          Stream.runForEach((batch) =>
            Effect.sync(() => first.push(batch)).pipe(
              Effect.andThen(Queue.offer(toCommit, batch)),
              Effect.andThen(Deferred.succeed(firstTook, undefined))
            )
          ),
          Effect.forkChild
        )
        yield* Deferred.await(release).pipe(
          Effect.andThen(
            Queue.take(toCommit).pipe(
              Effect.flatMap((batch) => batch.commit),
              Effect.forever
            )
          ),
          Effect.forkChild
        )
        yield* Deferred.await(firstTook)

        // A second member joins; it commits what it is given.
        const second = yield* Queue.unbounded<PartitionBatch>()
        const secondAssigned = yield* Deferred.make<void>()
        const onAssigned = (partitions: ReadonlyArray<number>) => {
          if (partitions.length > 0) Deferred.doneUnsafe(secondAssigned, Effect.void)
        }
        yield* log.consume({ topic, groupId, onAssigned }).pipe(
          Stream.runForEach((batch) => Queue.offer(second, batch).pipe(Effect.andThen(batch.commit))),
          Effect.forkChild
        )
        // Once the join has begun a rebalance, the joiner is given nothing while the first member holds batches:
        // kafkajs rejoins only when its batch handlers return, and they wait for the commits. The window is
        // several of the first member's heartbeats (3 s), after which it would have rejoined if they did not.
        yield* Effect.promise(() => admin.describeGroups([groupId])).pipe(
          Effect.map(({ groups }) => groups[0]?.state),
          Effect.repeat({
            schedule: Schedule.spaced("100 millis"),
            until: (state) => state === "PreparingRebalance",
            times: 600
          })
        )
        const assignedWhileHeld = yield* Deferred.await(secondAssigned).pipe(Effect.timeoutOption("10 seconds"))
        assert.isTrue(Option.isNone(assignedWhileHeld), "the joiner was given partitions the first member held")
        yield* Deferred.succeed(release, undefined)
        // Records on the joiner's partitions past what the first member was given.
        yield* Deferred.await(secondAssigned)
        yield* log.append(topic, wave(2))
        const given = [yield* Queue.take(second), ...(yield* Queue.takeAll(second))]

        const rangesOf = (batches: ReadonlyArray<PartitionBatch>) =>
          batches.map((batch) => ({
            partition: batch.partition,
            from: batch.records[0]!.offset,
            to: batch.records[batch.records.length - 1]!.offset
          }))
        const overlaps = rangesOf(given).filter((taken) =>
          rangesOf(first).some(
            (held) => held.partition === taken.partition && held.from <= taken.to && taken.from <= held.to
          )
        )
        assert.deepStrictEqual(overlaps, [], "records the first member held were given to the joiner")
      }).pipe(Effect.scoped)
  )
})
