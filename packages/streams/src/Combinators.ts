import { Metrics, parentFromHeaders, TracesExported, traceparentOf } from "@dexmon/observability"
import {
  type ConsumerRecord,
  type EventLog,
  FIRST_APPEND_HEADER,
  firstAppendHeader,
  type PartitionBatch,
  type ProducerRecord
} from "@dexmon/ports"
import { Clock, Effect, Exit, Schedule, Stream, type Tracer } from "effect"
import type { BatchTrace, Decoded, DecodedBatch, Failed } from "./DecodedBatch.ts"

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
 * Runs a stage's work on a batch under the batch's span (when it has one), so the writes, appends and
 * commit it makes join the trace of the batch, whichever fiber the stage runs on.
 */
const inBatchSpan =
  (batch: DecodedBatch<unknown>) =>
  <X, E, R>(work: Effect.Effect<X, E, R>): Effect.Effect<X, E, R> =>
    batch.trace === undefined ? work : Effect.withParentSpan(work, batch.trace.span)

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
    const writeBatch = Effect.fnUntraced(function* (batch: DecodedBatch<A>) {
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
    return Stream.mapEffect(batches, (batch) => inBatchSpan(batch)(writeBatch(batch)))
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
            inBatchSpan(batch),
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
      inBatchSpan(batch),
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
 * The tracing and counting of the batches through one partition's pipeline. `start` (after decoding)
 * opens one span per record when spans are exported (`TracesExported`), continuing the trace its producer
 * started (the `traceparent` header), so a trace runs from the POST through the event log into each consumer,
 * and the batch's own span, linked to them: the stages run their work on the batch under it (`inBatchSpan`),
 * whichever fiber each runs on. A span has one parent, so the batch's is a record's only when all its records
 * continue one trace (one POST's readings, one notification): then the batch span is the first record's
 * child and its writes show in that trace. A batch of several traces (under load, most are) stays a root
 * that links to each: as the child of one it would put the writes for hundreds of POSTs into the first's trace.
 * `finish` (after the commit) ends them and counts the batch. A batch still open when the pipeline
 * stops (a failure, a restart) has its spans ended with that exit by `abandon`.
 */
export const observeBatches = (groupId: string) => {
  const open = new Set<BatchTrace>()
  const end = (trace: BatchTrace, exit: Exit.Exit<unknown, unknown>) =>
    Effect.map(Clock.currentTimeNanos, (ended) => {
      open.delete(trace)
      for (const span of trace.records.values()) span.end(ended, exit)
      trace.span.end(ended, exit)
      return ended
    })

  const start = <A, E, R>(batches: Stream.Stream<DecodedBatch<A>, E, R>): Stream.Stream<DecodedBatch<A>, E, R> =>
    Stream.mapEffect(
      batches,
      Effect.fnUntraced(function* (decoded) {
        const { batch } = decoded
        // Per-record spans, and the batch's place in a producer's trace, only show in a trace store: without
        // export no record's header is even parsed (this runs for every record consumed).
        const exported = yield* TracesExported
        const producers = exported ? batch.records.map((record) => parentFromHeaders(record.headers)) : []
        const records = new Map<ConsumerRecord, Tracer.Span>()
        if (exported) {
          for (const [index, record] of batch.records.entries()) {
            const span = yield* Effect.makeSpan(`${batch.topic} process`, {
              parent: producers[index],
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
            records.set(record, span)
          }
        }
        const [first] = producers
        const oneTrace = first !== undefined && producers.every((producer) => producer?.traceId === first.traceId)
        const span = yield* Effect.makeSpan(`${batch.topic} batch`, {
          kind: "consumer",
          ...(oneTrace ? { parent: records.get(batch.records[0]!) ?? first } : {}),
          links: [...records.values()].map((span) => ({ span, attributes: {} })),
          attributes: {
            "messaging.consumer.group.name": groupId,
            "messaging.batch.message_count": batch.records.length,
            "messaging.destination.partition.id": String(batch.partition)
          }
        })
        const trace: BatchTrace = { span, records }
        open.add(trace)
        return { ...decoded, trace }
      })
    )

  const finish = <A, E, R>(batches: Stream.Stream<DecodedBatch<A>, E, R>): Stream.Stream<DecodedBatch<A>, E, R> =>
    Stream.tap(
      batches,
      Effect.fnUntraced(function* ({ batch, trace }) {
        const ended = trace === undefined ? yield* Clock.currentTimeNanos : yield* end(trace, Exit.void)
        Metrics.eventsConsumed.inc({ topic: batch.topic, group: groupId }, batch.records.length)
        Metrics.batchSize.observe({ group: groupId }, batch.records.length)
        const committedAt = Number(ended / 1_000_000n)
        // Each record's exemplar is the trace of the request that produced it (its `traceparent`), when spans are
        // exported: a slow bucket leads to the POST it timed. Synchronous: thousands of records a second.
        const exported = yield* TracesExported
        const labels = { topic: batch.topic, group: groupId }
        for (const record of batch.records) {
          const traceId = exported ? parentFromHeaders(record.headers)?.traceId : undefined
          Metrics.observeTraced(Metrics.endToEnd, labels, (committedAt - record.timestamp) / 1000, traceId)
        }
      })
    )

  const abandon = (exit: Exit.Exit<unknown, unknown>) => Effect.forEach([...open], (trace) => end(trace, exit))

  return { start, finish, abandon }
}

/**
 * The trace that what a record leads to continues (a message appended for it, a row worked on later), as a W3C
 * `traceparent`: the record's span in this consumer when spans are exported, else its producer's (its own
 * header), so the trace runs on through this consumer; undefined for a record that carries none.
 */
export const recordTraceparent = (batch: DecodedBatch<unknown>, record: ConsumerRecord): string | undefined => {
  const span = batch.trace?.records.get(record)
  if (span !== undefined) return traceparentOf(span)
  // The producer's own header as it came (DexMon's producers write W3C and B3 both); only a B3-only producer's
  // is parsed and written again, as W3C.
  const header = record.headers.traceparent
  if (header !== undefined) return header
  const producer = parentFromHeaders(record.headers)
  return producer === undefined ? undefined : traceparentOf(producer)
}

/**
 * Keeps `dexmon_consumer_lag` current for the partitions this consumer owns and has
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
 * How many batches wait for each stage of a partition's pipeline. One is enough to overlap the stages
 * (decoding batch N+1 while N is written and N-1 committed); more would only add batches that a
 * rebalance or a restart hands to the next owner undone.
 */
const STAGE_BUFFER = 1

/**
 * How many consumed batches of one partition wait for its pipeline. The consumed stream is one
 * sequence of every partition's batches, so when a partition's pipeline falls this far behind, taking
 * its next batch waits for it, and with it every partition's next batch (and Kafka's fetch, which
 * keeps the membership alive meanwhile): the other partitions run ahead of the slowest by at most
 * this many batches plus those in its stages. A batch of 500 records is some hundred kilobytes, so the
 * buffer is cheap; it is sized to absorb one slow write (a store's hiccup, a large batch), not an outage.
 */
const PARTITION_BUFFER = 4

/**
 * A consumer: each assigned partition's batches flow, in offset order, as one stream through decode,
 * apply (`options.apply`), routing what fails to the DLQ, and the commit, with a batch's buffer between
 * the stages, so decoding, writing and committing successive batches overlap while each stage keeps
 * the partition's order and a batch is committed only after its writes and dead letters are durable.
 * The partitions run side by side, one pipeline each (as many as the member is assigned: the router
 * must never wait on a pipeline that is not running). On the embedded log one partition's slow write
 * does not hold up the others (up to `PARTITION_BUFFER`); on Kafka a member's next fetch from a broker
 * waits until every batch of its last fetch is committed (below), so there the partitions of one fetch
 * run side by side and its slices overlap in the stages. Each batch is traced and counted (`observeBatches`).
 *
 * A rebalance never finds a partition's batches in two members' pipelines: the event log lets a member
 * rejoin its group only once the batches it handed over are committed (Kafka's waits in its batch
 * handlers; the embedded log's members keep their partitions while they run), so the next owner starts
 * from their commit. Only a member whose pipeline outlasts the group's rebalance timeout (a store or DLQ
 * outage longer than 60 s during a rebalance) is put out with batches still in hand: it still writes
 * them (and the notifier may append their notifications again), its commits are refused and the next
 * owner redelivers them. Meanwhile the rest of the group waits for it to rejoin.
 */
export const runConsumer = <A, R>(options: ConsumerOptions<A, R>) => {
  const nextOffsets = new Map<number, number>()
  /** The partitions this member owns (undefined until the event log says), for the lag it may report. */
  let owned: ReadonlySet<number> | undefined
  // A partition handed to another member loses its lag series here: left behind, its last value would stay
  // exported for ever beside the new owner's (and a growth rule would see a series that never changes).
  const onAssigned = (partitions: ReadonlyArray<number>) => {
    owned = new Set(partitions)
    for (const partition of [...nextOffsets.keys()]) {
      if (owned.has(partition)) continue
      nextOffsets.delete(partition)
      Metrics.consumerLag.remove({ topic: options.topic, partition: String(partition), group: options.groupId })
    }
    options.onAssigned?.(partitions)
  }
  const drainPartition = (batches: Stream.Stream<PartitionBatch>) => {
    const observer = observeBatches(options.groupId)
    return batches.pipe(
      decodeRecords(options.decode),
      observer.start,
      Stream.buffer({ capacity: STAGE_BUFFER }),
      options.apply,
      Stream.buffer({ capacity: STAGE_BUFFER }),
      routeFailuresToDeadLetters(options.eventLog, options.deadLetterTopic),
      commitBatches,
      observer.finish,
      Stream.runForEach(({ batch }) =>
        Effect.sync(() => {
          const last = batch.records[batch.records.length - 1]
          if (last !== undefined && (owned === undefined || owned.has(batch.partition)))
            nextOffsets.set(batch.partition, last.offset + 1)
        })
      ),
      Effect.onExit(observer.abandon)
    )
  }
  return Effect.scoped(
    Effect.gen(function* () {
      yield* Effect.forkScoped(reportLag(options.eventLog, options.topic, options.groupId, nextOffsets))
      yield* options.eventLog
        .consume({
          topic: options.topic,
          groupId: options.groupId,
          maxBatchSize: options.maxBatchSize,
          onAssigned
        })
        .pipe(
          Stream.groupByKey((batch) => batch.partition, { bufferSize: PARTITION_BUFFER }),
          Stream.mapEffect(([, batches]) => drainPartition(batches), {
            concurrency: "unbounded",
            unordered: true
          }),
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
