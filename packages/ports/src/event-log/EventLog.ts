import { Context, type Effect, Schema, type Stream } from "effect"
import { StoreFailureFields } from "../StoreFailure.ts"

/** A message to append: the key decides the partition, so one key's messages stay in order. */
export interface ProducerRecord {
  readonly key: string
  readonly value: Uint8Array
  readonly headers: Readonly<Record<string, string>>
  /**
   * The record's log time (epoch ms), as Kafka's CreateTime: when absent, the
   * time of the append. Only tools that re-append records (DLQ replay, tests
   * that script a day of traffic) set it.
   */
  readonly timestamp?: number | undefined
}

/** Where an appended message landed. */
export interface RecordPosition {
  readonly topic: string
  readonly partition: number
  readonly offset: number
}

export interface ConsumerRecord extends ProducerRecord, RecordPosition {
  /** The record's log time (Kafka's CreateTime: when it was appended, unless the appender set it), epoch ms. */
  readonly timestamp: number
}

/**
 * Consecutive messages of one partition, in offset order. `commit` records
 * that everything up to and including the last record is done for the group;
 * call it only after the work those records caused is durable.
 */
export interface PartitionBatch {
  readonly topic: string
  readonly partition: number
  readonly records: ReadonlyArray<ConsumerRecord>
  readonly commit: Effect.Effect<void, EventLogError>
}

export interface ConsumeOptions {
  readonly topic: string
  readonly groupId: string
  /** Most records in one batch of one partition. */
  readonly maxBatchSize?: number
  /**
   * Called with every partition this member owns, each time that set changes
   * (a rebalance, a takeover): the notifier runs clock ticks for exactly these.
   */
  readonly onAssigned?: (partitions: ReadonlyArray<number>) => void
}

export interface FollowOptions {
  /**
   * Most records read from one partition at a time (default 500); each chunk of the stream holds
   * one partition's records, no more.
   */
  readonly maxBatchSize?: number
}

export interface TopicSpec {
  readonly name: string
  readonly partitions: number
}

/**
 * What a failed append did to the log, when the layer can tell (the embedded log's appends are one
 * transaction: absent, nothing was appended):
 * - `refused`: the queue of pending appends was full; nothing was appended.
 * - `withdrawn`: the append timed out before any of it was sent, and was taken off the queue; nothing was appended.
 * - `unknown`: some of it was sent and not confirmed; it may be in the log (in part or whole), or not.
 */
export const AppendOutcome = Schema.Literals(["refused", "withdrawn", "unknown"])
export type AppendOutcome = typeof AppendOutcome.Type

export class EventLogError extends Schema.TaggedError<EventLogError>()("EventLogError", {
  ...StoreFailureFields,
  appendOutcome: Schema.optional(AppendOutcome)
}) {}

/**
 * The event log port: topics split into a fixed number of partitions, appends
 * that are durable when they return, and consumer groups that read each
 * partition in order and resume from their committed offsets (at-least-once).
 * Kafka stands behind it in production; the embedded layer keeps the log in
 * PostgreSQL.
 */
export class EventLog extends Context.Service<
  EventLog,
  {
    /** Appends records and returns once they are durable, positions in input order. */
    readonly append: (
      topic: string,
      records: ReadonlyArray<ProducerRecord>
    ) => Effect.Effect<ReadonlyArray<RecordPosition>, EventLogError>
    /**
     * Joins a consumer group and streams batches of the partitions it is given.
     * Leaving the stream leaves the group; uncommitted records are delivered again.
     */
    readonly consume: (options: ConsumeOptions) => Stream.Stream<PartitionBatch, EventLogError>
    /** The offset the next append to each partition will get (Kafka's high watermark), by partition. */
    readonly endOffsets: (topic: string) => Effect.Effect<ReadonlyMap<number, number>, EventLogError>
    /** The next offset a consumer group will read in each partition it has committed (absent: none committed). */
    readonly committedOffsets: (
      groupId: string,
      topic: string
    ) => Effect.Effect<ReadonlyMap<number, number>, EventLogError>
    /**
     * The first offset of each partition whose log time is at or after `time` (epoch ms), or the
     * partition's end offset when none is, by partition: where `follow` starts to replay from a time.
     * Log times are the appenders' (CreateTime), so a record stamped in the past that was appended
     * after later-stamped ones is not where this points.
     */
    readonly offsetsForTime: (topic: string, time: number) => Effect.Effect<ReadonlyMap<number, number>, EventLogError>
    /**
     * Reads every partition of the topic from the offset `from` gives it, outside any consumer group:
     * every caller sees every record (the live stream's gateway replicas each follow the whole topic),
     * nothing is committed, and the stream does not end at the end of the log but waits for new records.
     *
     * - A partition absent from `from` starts at its end offset when the stream starts: only records
     *   appended after that. An offset beyond the end starts at the end; one before the oldest record
     *   kept starts at the oldest.
     * - Records come in offset order per partition, each once; partitions interleave in no set order.
     * - Records rather than `PartitionBatch`es: a batch's `commit` has nothing to commit here, and each
     *   record carries the partition and offset a resume cursor needs. The stream's chunks are still the
     *   batches read (one partition each, at most `maxBatchSize`), so `Stream.chunks` recovers them.
     * - Leaving the stream releases everything it holds (Kafka: its consumer, and the one-member
     *   group it needs, which is deleted).
     */
    readonly follow: (
      topic: string,
      from: ReadonlyMap<number, number>,
      options?: FollowOptions
    ) => Stream.Stream<ConsumerRecord, EventLogError>
    /** A cheap round trip to the log, for readiness probes. */
    readonly ping: Effect.Effect<void, EventLogError>
  }
>()("dexmon/ports/event-log/EventLog") {}
