import { type ConsumerRecord, EventLog, FIRST_APPEND_HEADER, type ProducerRecord, Topics } from "@dexmon/ports"
import { Context, Effect, Layer, Option, Schema, Stream } from "effect"

/** A message of a dead-letter topic, with where it sits and why it is there. */
export interface DeadLetter {
  readonly partition: number
  readonly offset: number
  readonly key: string
  readonly value: string
  readonly errorTag: string | undefined
  readonly errorMessage: string | undefined
  readonly source: string | undefined
  readonly attempts: string | undefined
  readonly firstFailureAt: string | undefined
}

const DLQ_HEADER = /^dlq-/

/**
 * `events`: what the processor could not apply; `alerts`: what the notifier
 * could not store; `deliveries`: webhook deliveries the deliverer gave up on.
 */
export type DeadLetterQueue = "events" | "alerts" | "deliveries"

/**
 * A whole number the DLQ headers carry: the failed record's own log time, which `deadLetterRecord`
 * keeps in `dlq-source-timestamp` (epoch ms), and its partition and offset.
 */
const decodeHeaderNumber = Schema.decodeUnknownOption(
  Schema.NumberFromString.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0))
)

/**
 * The message to put back on its source topic: the original key, value and headers, without the DLQ's,
 * at its original log time, so the notifier judges a replayed reading late or live as it did the first
 * time. A dead letter written before the DLQ kept that time is appended at the time of the replay.
 * Where the event was first appended (`dexmon-first-append`) goes back with it, so it keeps its place
 * in the order that decides which of two values at its key is the later; a dead letter written before
 * that header existed takes it from where it failed.
 */
export const originalOf = (record: ConsumerRecord): ProducerRecord => {
  const timestamp = Option.getOrUndefined(decodeHeaderNumber(record.headers["dlq-source-timestamp"]))
  const headers = Object.fromEntries(Object.entries(record.headers).filter(([name]) => !DLQ_HEADER.test(name)))
  const partition = decodeHeaderNumber(record.headers["dlq-source-partition"])
  const offset = decodeHeaderNumber(record.headers["dlq-source-offset"])
  if (headers[FIRST_APPEND_HEADER] === undefined && Option.isSome(partition) && Option.isSome(offset)) {
    headers[FIRST_APPEND_HEADER] = `${partition.value}/${offset.value}`
  }
  return { key: record.key, value: record.value, headers, ...(timestamp === undefined ? {} : { timestamp }) }
}

const describe = (record: ConsumerRecord): DeadLetter => ({
  partition: record.partition,
  offset: record.offset,
  key: record.key,
  value: Buffer.from(record.value).toString("utf8"),
  errorTag: record.headers["dlq-error-tag"],
  errorMessage: record.headers["dlq-error-message"],
  source: record.headers["dlq-source-topic"]
    ? `${record.headers["dlq-source-topic"]}/${record.headers["dlq-source-partition"]}@${record.headers["dlq-source-offset"]}`
    : undefined,
  attempts: record.headers["dlq-attempts"],
  firstFailureAt: record.headers["dlq-first-failure-at"]
})

/**
 * Reading and replaying dead letters. Reading uses a throw-away consumer group
 * and stops at the topic's end offsets as they were when it started, so it
 * never commits anything nor waits for new messages.
 */
export class DeadLetters extends Context.Service<
  DeadLetters,
  {
    readonly list: (queue: DeadLetterQueue) => Effect.Effect<ReadonlyArray<DeadLetter>, unknown>
    /**
     * Appends the chosen dead letters (`partition:offset`, or all) back to their source topic
     * (`glucose.events`, or `glucose.alerts` for deliveries, naming their endpoint); returns how many.
     */
    readonly replay: (queue: DeadLetterQueue, chosen: ReadonlySet<string> | "all") => Effect.Effect<number, unknown>
    /** The topic name of a dead-letter queue in this deployment. */
    readonly topicOf: (queue: DeadLetterQueue) => string
  }
>()("dexmon/dlq/DeadLetters") {
  static readonly layer = Layer.effect(
    DeadLetters,
    Effect.gen(function* () {
      const eventLog = yield* EventLog
      const { names } = yield* Topics

      const readAll = Effect.fn("DeadLetters.readAll")(function* (topic: string) {
        const ends = yield* eventLog.endOffsets(topic)
        const remaining = new Map([...ends].filter(([, end]) => end > 0))
        if (remaining.size === 0) return [] as ReadonlyArray<ConsumerRecord>
        const records: Array<ConsumerRecord> = []
        yield* eventLog.consume({ topic, groupId: `dexmon-dlq-reader-${crypto.randomUUID()}` }).pipe(
          Stream.map((batch) => {
            for (const record of batch.records) {
              if (record.offset < (ends.get(record.partition) ?? 0)) records.push(record)
            }
            const last = batch.records[batch.records.length - 1]!.offset
            if (last + 1 >= (ends.get(batch.partition) ?? 0)) remaining.delete(batch.partition)
            return remaining.size === 0
          }),
          Stream.takeUntil((done) => done),
          Stream.runDrain
        )
        return records.sort((a, b) => a.partition - b.partition || a.offset - b.offset)
      })

      const topicOf = (queue: DeadLetterQueue) =>
        queue === "events" ? names.eventsDlq : queue === "alerts" ? names.alertsDlq : names.deliveryDlq
      /** Where a queue's messages came from: a failed delivery goes back to the notifications, for its endpoint only. */
      const sourceOf = (queue: DeadLetterQueue) => (queue === "deliveries" ? names.alerts : names.events)

      const list = Effect.fn("DeadLetters.list")(function* (queue: DeadLetterQueue) {
        return (yield* readAll(topicOf(queue))).map(describe)
      })

      const replay = Effect.fn("DeadLetters.replay")(function* (
        queue: DeadLetterQueue,
        chosen: ReadonlySet<string> | "all"
      ) {
        const picked = (yield* readAll(topicOf(queue))).filter(
          (record) => chosen === "all" || chosen.has(`${record.partition}:${record.offset}`)
        )
        yield* eventLog.append(sourceOf(queue), picked.map(originalOf))
        return picked.length
      })

      return DeadLetters.of({ list, replay, topicOf })
    })
  )
}
