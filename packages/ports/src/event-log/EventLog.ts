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

export interface TopicSpec {
  readonly name: string
  readonly partitions: number
}

export class EventLogError extends Schema.TaggedError<EventLogError>()("EventLogError", StoreFailureFields) {}

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
    /** A cheap round trip to the log, for readiness probes. */
    readonly ping: Effect.Effect<void, EventLogError>
  }
>()("dexmon/ports/event-log/EventLog") {}
