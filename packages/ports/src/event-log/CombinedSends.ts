import { Deferred, Effect } from "effect"
import type { SendPartition } from "./AppendLanes.ts"
import type { EventLogError, ProducerRecord } from "./EventLog.ts"
import { offsetOf, type PartitionRecords } from "./RecreatingProducer.ts"

/** Sends several partitions' records of one topic as one request; answers each partition's first offset. */
export type SendPartitions = (
  topic: string,
  parts: ReadonlyArray<PartitionRecords>
) => Effect.Effect<ReadonlyMap<number, number>, EventLogError>

interface Waiting {
  readonly partition: number
  readonly records: ReadonlyArray<ProducerRecord>
  readonly done: Deferred.Deferred<number, EventLogError>
}

interface Group {
  readonly topic: string
  readonly waiting: Array<Waiting>
  sending: boolean
}

/**
 * Gathers the append lanes' requests into shared sends. kafkajs lets an idempotent producer have one
 * request in flight per broker, so lanes sending on their own take turns at each broker, a round trip
 * each; here the requests of one topic's partitions that share a group (their leader broker) wait while
 * that group's send is in flight and then go together, one produce request carrying them all. Each lane
 * still has at most one request outstanding, so a partition's sequence numbers stay in order. Groups
 * are independent: a broker that does not answer holds up only the partitions it leads, and a partition
 * without a leader (`groupOf` gives it a group of its own) only itself.
 */
export const makeCombinedSends = Effect.fnUntraced(function* (
  sendPartitions: SendPartitions,
  groupOf: (topic: string, partition: number) => string
) {
  const scope = yield* Effect.scope
  const groups = new Map<string, Group>()

  /** Sends what waits in the group, all of it each time, until nothing does. */
  const drain = (group: Group) =>
    Effect.gen(function* () {
      while (group.waiting.length > 0) {
        const taken = group.waiting.splice(0)
        const result = yield* sendPartitions(
          group.topic,
          taken.map(({ partition, records }) => ({ partition, records }))
        ).pipe(Effect.result)
        for (const { partition, done } of taken) {
          yield* Deferred.complete(
            done,
            result._tag === "Failure" ? Effect.fail(result.failure) : offsetOf(group.topic, partition, result.success)
          )
        }
      }
      group.sending = false
    })

  const send: SendPartition = (topic, partition, records) =>
    Effect.gen(function* () {
      const key = `${topic}\u0000${groupOf(topic, partition)}`
      let group = groups.get(key)
      if (group === undefined) {
        group = { topic, waiting: [], sending: false }
        groups.set(key, group)
      }
      const done = yield* Deferred.make<number, EventLogError>()
      group.waiting.push({ partition, records, done })
      if (!group.sending) {
        group.sending = true
        yield* Effect.forkIn(drain(group), scope)
      }
      return yield* Deferred.await(done)
    })

  return send
})
