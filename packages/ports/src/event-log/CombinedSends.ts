import { Deferred, type Duration, Effect } from "effect"
import type { SendPartition } from "./AppendLanes.ts"
import type { EventLogError, ProducerRecord } from "./EventLog.ts"
import { offsetOf, type PartitionRecords } from "./RecreatingProducer.ts"

/**
 * Sends several partitions' records of one topic as one request; answers each partition's first offset.
 * With `patience`, a request not answered by then fails (and its producer is replaced).
 */
export type SendPartitions = (
  topic: string,
  parts: ReadonlyArray<PartitionRecords>,
  patience?: Duration.Input | undefined
) => Effect.Effect<ReadonlyMap<number, number>, EventLogError>

export interface CombinedSendsOptions {
  /** The group of a topic's partition: its leader broker, or a group of its own when it has none. */
  readonly groupOf: (topic: string, partition: number) => string
  /** Waits until a request may be sent (the producer is connected, not being replaced). */
  readonly ready: Effect.Effect<void>
  /**
   * How long a request carrying several partitions may go unanswered. kafkajs retries a send whole, so
   * one partition that lost its leader since the groups were read would hold the others in it for as
   * long as it has none; past this they fail (outcome unknown: retried safely) and `onGiveUp` runs.
   */
  readonly patience: Duration.Input
  /** After a request failed: the groups are read again. */
  readonly onGiveUp: Effect.Effect<void>
}

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
  options: CombinedSendsOptions
) {
  const scope = yield* Effect.scope
  const groups = new Map<string, Group>()

  /** Sends what waits in the group, all of it each time, until nothing does. */
  const drain = (group: Group) => {
    let taken: Array<Waiting> = []
    return Effect.gen(function* () {
      while (group.waiting.length > 0) {
        // A request failed a moment ago may have put the producer out: wait for its replacement, or
        // what waits here would fail at once, never sent.
        yield* options.ready
        taken = group.waiting.splice(0)
        const result = yield* sendPartitions(
          group.topic,
          taken.map(({ partition, records }) => ({ partition, records })),
          taken.length > 1 ? options.patience : undefined
        ).pipe(Effect.result)
        if (result._tag === "Failure") yield* options.onGiveUp
        for (const { partition, done } of taken) {
          yield* Deferred.complete(
            done,
            result._tag === "Failure" ? Effect.fail(result.failure) : offsetOf(group.topic, partition, result.success)
          )
        }
        taken = []
      }
      // In the same step as the check that nothing waits: a send arriving after it starts a new drain.
      group.sending = false
    }).pipe(
      // A drain that dies or is interrupted (shutdown) leaves no request waiting for ever, and the group
      // takes requests again.
      Effect.onExit((exit) =>
        Effect.suspend(() => {
          if (exit._tag === "Success") return Effect.void
          group.sending = false
          const stranded = [...taken, ...group.waiting.splice(0)]
          return Effect.forEach(stranded, ({ done }) => Deferred.failCause(done, exit.cause), { discard: true })
        })
      )
    )
  }

  const send: SendPartition = (topic, partition, records) =>
    Effect.gen(function* () {
      const key = `${topic}\u0000${options.groupOf(topic, partition)}`
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
