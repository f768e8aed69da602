import { Metrics, parentFromHeaders } from "@dexmon/observability"
import {
  type ConsumerRecord,
  type EventLog,
  FIRST_APPEND_HEADER,
  firstAppendHeader,
  type PartitionBatch,
  type ProducerRecord
} from "@dexmon/ports"
import { Clock, Effect, Exit, Schedule, Stream } from "effect"
import type { Decoded, DecodedBatch, Failed } from "./DecodedBatch.ts"

const describe = (error: unknown): { readonly tag: string; readonly message: string } => ({
  tag:
    typeof error === "object" && error !== null && "_tag" in error
      ? String(error._tag)
      : error instanceof Error
        ? error.name
        : "Unknown",
  message: error instanceof Error ? error.message : String(error)
})

/**
 * Decodes every record of each batch. A record that cannot be decoded is not
 * retried (it will never decode); it is set aside as failed, for the DLQ.
 */
export const decodeRecords =
  <A, E>(decode: (value: Uint8Array) => Effect.Effect<A, E>) =>
  <E2, R>(batches: Stream.Stream<PartitionBatch, E2, R>): Stream.Stream<DecodedBatch<A>, E2, R> =>
    Stream.mapEffect(
      batches,
      Effect.fnUntraced(function* (batch) {
        const now = yield* Clock.currentTimeMillis
        const decoded: Array<Decoded<A>> = []
        const failed: Array<Failed> = []
        for (const record of batch.records) {
          const result = yield* Effect.result(decode(record.value))
          if (result._tag === "Success") decoded.push({ record, value: result.success })
          else {
            const { tag, message } = describe(result.failure)
            failed.push({ record, errorTag: tag, errorMessage: message, attempts: 1, firstFailureAt: now })
          }
        }
        return { batch, decoded, failed }
      })
    )

/**
 * Drops, within each batch, every value whose key was already seen earlier in
 * the batch: Kafka redelivers whole runs after a crash, and one event id need
 * only be applied once.
 */
export const dedupWithinBatch =
  <A>(keyOf: (value: A) => string) =>
  <E, R>(batches: Stream.Stream<DecodedBatch<A>, E, R>): Stream.Stream<DecodedBatch<A>, E, R> =>
    Stream.map(batches, (batch) => {
      const seen = new Set<string>()
      return {
        ...batch,
        decoded: batch.decoded.filter(({ value }) => {
          const key = keyOf(value)
          if (seen.has(key)) return false
          seen.add(key)
          return true
        })
      }
    })

export interface RetryPolicy<in E = unknown> {
  /** Attempts after the first one, for failures that are not transient. */
  readonly retries: number
  readonly initialDelay: number
  readonly maxDelay: number
  /**
   * Whether a failure is transient (the store is down or unreachable). Those
   * are retried for as long as they last, so the consumer waits instead of
   * sending good events to the DLQ; the others count against `retries`.
   */
  readonly isTransient: (error: E) => boolean
}

/** How a consumer waits out a store that is down: capped exponential backoff, no end. */
const untilAvailable = Schedule.min([Schedule.exponential("200 millis"), Schedule.spaced("10 seconds")])

/** Exponential backoff with jitter, capped, for at most `retries` retries. */
export const backoff = (policy: RetryPolicy<never>) =>
  Schedule.min([Schedule.exponential(policy.initialDelay), Schedule.spaced(policy.maxDelay)]).pipe(
    Schedule.jittered,
    Schedule.upTo({ times: policy.retries })
  )

/**
 * Applies the decoded values of each batch with `write`, retrying with
 * backoff. When the whole batch still fails, each value is tried on its own
 * (with the same retries), so one bad value cannot hold back the others; the
 * values that still fail join the batch's failed records, for the DLQ.
 */
export const writeWithRetry =
  <A, E>(write: (values: ReadonlyArray<A>) => Effect.Effect<void, E>, policy: RetryPolicy<E>) =>
  <E2, R>(batches: Stream.Stream<DecodedBatch<A>, E2, R>): Stream.Stream<DecodedBatch<A>, E2, R> => {
    const attempt = (values: ReadonlyArray<A>) =>
      write(values).pipe(
        Effect.tapError((error) =>
          policy.isTransient(error)
            ? Effect.logWarning("store unavailable; retrying without advancing", error)
            : Effect.void
        ),
        Effect.retry({ schedule: untilAvailable, while: policy.isTransient }),
        Effect.retry(backoff(policy)),
        Effect.result
      )
    return Stream.mapEffect(
      batches,
      Effect.fnUntraced(function* (batch) {
        if (batch.decoded.length === 0) return batch
        const firstTry = yield* Clock.currentTimeMillis
        const whole = yield* attempt(batch.decoded.map((d) => d.value))
        if (whole._tag === "Success") return batch
        yield* Effect.logWarning("batch write failed after retries; writing its values one by one", whole.failure)
        const failed: Array<Failed> = [...batch.failed]
        for (const item of batch.decoded) {
          const single = yield* attempt([item.value])
          if (single._tag === "Failure") {
            const { tag, message } = describe(single.failure)
            failed.push({
              record: item.record,
              errorTag: tag,
              errorMessage: message,
              attempts: 2 * (policy.retries + 1),
              firstFailureAt: firstTry
            })
          }
        }
        const failedRecords = new Set(failed.map((f) => f.record))
        return { ...batch, decoded: batch.decoded.filter((d) => !failedRecords.has(d.record)), failed }
      })
    )
  }

/**
 * The DLQ message for a failed record: its original key, value and headers, plus why and where it failed,
 * and its log time (`dlq-source-timestamp`, epoch ms), which a replay appends it with again: lateness is
 * measured from the log time, so a replayed reading is judged late or live exactly as it was the first time.
 * Its first position in the log goes along too (`dexmon-first-append`), so that a replayed event is
 * ordered against others at its key by when it was first accepted, not by when it was replayed.
 */
export const deadLetterRecord = (failed: Failed): ProducerRecord => ({
  key: failed.record.key,
  value: failed.record.value,
  headers: {
    ...failed.record.headers,
    [FIRST_APPEND_HEADER]: firstAppendHeader(failed.record),
    "dlq-error-tag": failed.errorTag,
    "dlq-error-message": failed.errorMessage.slice(0, 2000),
    "dlq-source-topic": failed.record.topic,
    "dlq-source-partition": String(failed.record.partition),
    "dlq-source-offset": String(failed.record.offset),
    "dlq-source-timestamp": String(failed.record.timestamp),
    "dlq-attempts": String(failed.attempts),
    "dlq-first-failure-at": new Date(failed.firstFailureAt).toISOString()
  }
})

/**
 * Sends each batch's failed records to the dead-letter topic. The append is
 * retried without bound: a batch is not done (and its offsets not committed)
 * until every record has either been applied or reached the DLQ.
 */
export const routeFailuresToDeadLetters =
  (eventLog: EventLog["Service"], deadLetterTopic: string) =>
  <A, E, R>(batches: Stream.Stream<DecodedBatch<A>, E, R>): Stream.Stream<DecodedBatch<A>, E, R> =>
    Stream.mapEffect(batches, (batch) =>
      batch.failed.length === 0
        ? Effect.succeed(batch)
        : eventLog.append(deadLetterTopic, batch.failed.map(deadLetterRecord)).pipe(
            Effect.tapError((error) => Effect.logError(`cannot write to ${deadLetterTopic}; retrying`, error)),
            Effect.retry(Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("10 seconds")])),
            // The schedule has no end: this only dies if the fiber is interrupted mid-retry.
            Effect.orDie,
            Effect.tap(() =>
              Effect.sync(() => Metrics.deadLetters.inc({ topic: deadLetterTopic }, batch.failed.length))
            ),
            Effect.tap(() =>
              Effect.logWarning(`${batch.failed.length} record(s) sent to ${deadLetterTopic}`, {
                offsets: batch.failed.map((f) => `${f.record.partition}:${f.record.offset}`)
              })
            ),
            Effect.as(batch)
          )
    )

/** Commits each batch once everything before it in the pipeline is durable. */
export const commitBatches = <A, E, R>(
  batches: Stream.Stream<DecodedBatch<A>, E, R>
): Stream.Stream<DecodedBatch<A>, E, R> =>
  Stream.mapEffect(batches, (batch) =>
    batch.batch.commit.pipe(
      Effect.retry(Schedule.exponential("100 millis").pipe(Schedule.upTo({ times: 5 }))),
      Effect.orDie,
      Effect.as(batch)
    )
  )

/**
 * Maps each decoded value to what the next stage writes, or to nothing. A
 * record whose value maps to nothing is done (its offset is committed with
 * the batch); failed records pass through untouched.
 */
export const mapDecoded =
  <A, B>(f: (value: A, record: ConsumerRecord) => B | undefined) =>
  <E, R>(batches: Stream.Stream<DecodedBatch<A>, E, R>): Stream.Stream<DecodedBatch<B>, E, R> =>
    Stream.map(batches, (batch) => ({
      ...batch,
      decoded: batch.decoded.flatMap(({ record, value }) => {
        const mapped = f(value, record)
        return mapped === undefined ? [] : [{ record, value: mapped }]
      })
    }))

/**
 * Runs a consumer pipeline for as long as the scope lives. When it fails (a
 * store down for longer than the retries, a lost connection), the failure is
 * logged and the pipeline starts again from the last committed offsets.
 */
export const superviseConsumer = <E, R>(name: string, pipeline: Effect.Effect<void, E, R>) =>
  pipeline.pipe(
    Effect.catchCause((cause) => Effect.logError(`${name} stopped; restarting from the last committed offsets`, cause)),
    Effect.andThen(Effect.sleep("1 second")),
    Effect.forever,
    Effect.annotateLogs({ consumer: name })
  )

export interface ConsumerOptions<A, R> {
  readonly eventLog: EventLog["Service"]
  readonly topic: string
  readonly groupId: string
  readonly maxBatchSize: number
  readonly decode: (value: Uint8Array) => Effect.Effect<A, unknown>
  /**
   * Applies the decoded values of each batch (writes them, or whatever the
   * consumer is for); a value that cannot be applied joins the batch's failed
   * records, for the DLQ. The batch is committed after this stage.
   */
  readonly apply: (batches: Stream.Stream<DecodedBatch<A>>) => Stream.Stream<DecodedBatch<unknown>, never, R>
  readonly deadLetterTopic: string
  /** Told the partitions this member owns each time that set changes. */
  readonly onAssigned?: (partitions: ReadonlyArray<number>) => void
}

export interface ConsumerPipelineOptions<A, B, E extends { readonly transient: boolean }>
  extends Omit<ConsumerOptions<A, never>, "apply"> {
  /** What a decoded record asks to write, or nothing; the record says where it sits in the log. */
  readonly toWrite: (value: A, record: ConsumerRecord) => B | undefined
  /** Writes with the same key within one batch are written once. */
  readonly writeKey: (write: B) => string
  readonly write: (writes: ReadonlyArray<B>) => Effect.Effect<void, E>
  /** Retries of a write the store refused (not of a store that is down: that is waited out). */
  readonly retries: number
}

/**
 * Runs the handling of one partition batch as a traced unit: one span per
 * record continues the trace its producer started (the `traceparent` header),
 * so a trace runs from the POST through the event log to the store; the
 * batch's own span links to them and is the parent of the store writes. Counts
 * the batch once it is committed.
 */
export const observeBatch =
  (groupId: string) =>
  <E, R>(batch: PartitionBatch, handle: Effect.Effect<void, E, R>): Effect.Effect<void, E, R> =>
    Effect.gen(function* () {
      const recordSpans = yield* Effect.forEach(batch.records, (record) =>
        Effect.makeSpan(`${batch.topic} process`, {
          parent: parentFromHeaders(record.headers),
          kind: "consumer",
          attributes: {
            "messaging.system": "kafka",
            "messaging.destination.name": batch.topic,
            "messaging.consumer.group.name": groupId,
            "messaging.kafka.message.key": record.key,
            "messaging.kafka.offset": record.offset,
            "messaging.destination.partition.id": String(batch.partition)
          }
        })
      )
      const exit = yield* handle.pipe(
        Effect.withSpan(`${batch.topic} batch`, {
          kind: "consumer",
          links: recordSpans.map((span) => ({ span, attributes: {} })),
          attributes: {
            "messaging.consumer.group.name": groupId,
            "messaging.batch.message_count": batch.records.length,
            "messaging.destination.partition.id": String(batch.partition)
          }
        }),
        Effect.exit
      )
      const ended = yield* Clock.currentTimeNanos
      for (const span of recordSpans) span.end(ended, exit)
      if (Exit.isSuccess(exit)) {
        Metrics.eventsConsumed.inc({ topic: batch.topic, group: groupId }, batch.records.length)
        Metrics.batchSize.observe({ group: groupId }, batch.records.length)
        const committedAt = Number(ended / 1_000_000n)
        for (const record of batch.records) {
          Metrics.endToEnd.observe({ topic: batch.topic, group: groupId }, (committedAt - record.timestamp) / 1000)
        }
      }
      return yield* exit
    })

/**
 * Keeps `dexmon_consumer_lag` current for the partitions this consumer has
 * committed: the end offset minus the next offset to read, every 5 seconds.
 */
const reportLag = (eventLog: EventLog["Service"], topic: string, groupId: string, nextOffsets: Map<number, number>) =>
  eventLog.endOffsets(topic).pipe(
    Effect.tap((ends) =>
      Effect.sync(() => {
        for (const [partition, next] of nextOffsets) {
          const end = ends.get(partition)
          if (end === undefined) continue
          Metrics.consumerLag.set({ topic, partition: String(partition), group: groupId }, end - next)
        }
      })
    ),
    Effect.ignore,
    Effect.repeat(Schedule.spaced("5 seconds"))
  )

/**
 * A consumer: decode each batch, apply it (`options.apply`), route what fails
 * to the DLQ, and commit only then. One partition's batches are handled one
 * at a time, in order, each as one observed unit (`observeBatch`).
 */
export const runConsumer = <A, R>(options: ConsumerOptions<A, R>) => {
  const nextOffsets = new Map<number, number>()
  const handle = (batch: PartitionBatch) =>
    Stream.succeed(batch).pipe(
      decodeRecords(options.decode),
      options.apply,
      routeFailuresToDeadLetters(options.eventLog, options.deadLetterTopic),
      commitBatches,
      Stream.runDrain,
      Effect.tap(() =>
        Effect.sync(() => {
          const last = batch.records[batch.records.length - 1]
          if (last !== undefined) nextOffsets.set(batch.partition, last.offset + 1)
        })
      )
    )
  const observe = observeBatch(options.groupId)
  return Effect.scoped(
    Effect.gen(function* () {
      yield* Effect.forkScoped(reportLag(options.eventLog, options.topic, options.groupId, nextOffsets))
      yield* options.eventLog
        .consume({
          topic: options.topic,
          groupId: options.groupId,
          maxBatchSize: options.maxBatchSize,
          ...(options.onAssigned === undefined ? {} : { onAssigned: options.onAssigned })
        })
        .pipe(
          Stream.mapEffect((batch) => observe(batch, handle(batch))),
          Stream.runDrain
        )
    })
  )
}

/**
 * The processor's consumer: collapse repeats within the batch, write with
 * retries; the rest is `runConsumer`'s.
 */
export const consumerPipeline = <A, B, E extends { readonly transient: boolean }>(
  options: ConsumerPipelineOptions<A, B, E>
) =>
  runConsumer({
    ...options,
    apply: (batches) =>
      batches.pipe(
        mapDecoded(options.toWrite),
        dedupWithinBatch(options.writeKey),
        writeWithRetry(options.write, {
          retries: options.retries,
          initialDelay: 100,
          maxDelay: 5_000,
          isTransient: (error) => error.transient
        })
      )
  })
