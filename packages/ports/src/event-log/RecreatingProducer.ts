import { Deferred, Duration, Effect, identity, Predicate, Schedule } from "effect"
import type { ProducerRecord as KafkaProducerRecord, Message, RecordMetadata } from "kafkajs"
import { failureOf } from "../StoreFailure.ts"
import { EventLogError, type ProducerRecord } from "./EventLog.ts"

/** The part of a kafkajs producer the append path uses (a test wraps or fakes it). */
export interface ProducerHandle {
  readonly connect: () => Promise<void>
  readonly disconnect: () => Promise<void>
  readonly send: (record: KafkaProducerRecord) => Promise<Array<RecordMetadata>>
}

/**
 * Broker answers after which an idempotent producer cannot go on: its producer id or epoch is no
 * longer known, or its sequence numbers and the broker's disagree. kafkajs does not recover from
 * them (they are not retriable, and every later send of that producer id fails the same way), so
 * the producer is replaced by a new one, with a new producer id and sequences from zero.
 */
export const LOST_PRODUCER_STATES: ReadonlyArray<string> = [
  "UNKNOWN_PRODUCER_ID",
  "OUT_OF_ORDER_SEQUENCE_NUMBER",
  "INVALID_PRODUCER_EPOCH"
]

/** The lost-state error type along a kafkajs error's cause chain (kafkajs wraps the broker's error), if any. */
export const lostProducerState = (error: unknown): string | undefined => {
  for (let current = error, depth = 0; current !== undefined && current !== null && depth < 8; depth++) {
    if (Predicate.hasProperty(current, "type") && LOST_PRODUCER_STATES.includes(String(current.type))) {
      return String(current.type)
    }
    current = Predicate.hasProperty(current, "cause") && current.cause !== current ? current.cause : undefined
  }
  return undefined
}

const failWith = failureOf((fields) => new EventLogError(fields))

/** One partition's records in a send. */
export interface PartitionRecords {
  readonly partition: number
  readonly records: ReadonlyArray<ProducerRecord>
}

/** The first offset Kafka answered for a partition of a send; a send it answered nothing for failed. */
export const offsetOf = (topic: string, partition: number, offsets: ReadonlyMap<number, number>) => {
  const offset = offsets.get(partition)
  return offset === undefined
    ? Effect.fail(
        new EventLogError({
          operation: "append",
          message: `Kafka answered no offset for ${topic}/${partition}`,
          transient: true
        })
      )
    : Effect.succeed(offset)
}

const toMessage = (partition: number, record: ProducerRecord): Message => ({
  key: record.key,
  // A view, not a copy: kafkajs copies the bytes into its request anyway (a copy was 3 % of the receiver's CPU on batches).
  value: Buffer.from(record.value.buffer, record.value.byteOffset, record.value.byteLength),
  headers: { ...record.headers },
  partition,
  // Absent, kafkajs stamps the time of the send (the broker keeps it: the topics use CreateTime).
  ...(record.timestamp === undefined ? {} : { timestamp: String(record.timestamp) })
})

/**
 * How often a replacement producer tries to connect: soon at first, then every second, so a broker
 * that comes back is written to again within about a second (issue 15 asks within 5 s).
 */
const reconnect = Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("1 second")])

/**
 * The idempotent producer behind the append lanes, replaced after any failed request: when the broker
 * says it has lost its state (`LOST_PRODUCER_STATES`), and after any other failure, which can leave its
 * sequence numbers behind what the log holds. While a replacement connects, `ready` waits and `isReady` is false (the
 * receiver's `/readyz` reports it); requests in flight on the old producer finish on it, and it is
 * disconnected once they have.
 */
export const makeRecreatingProducer = Effect.fnUntraced(function* (create: () => ProducerHandle) {
  const scope = yield* Effect.scope
  const connect = Effect.fnUntraced(function* () {
    const producer = create()
    yield* Effect.tryPromise({ try: () => producer.connect(), catch: failWith("connect") }).pipe(
      Effect.tapError(() => Effect.promise(() => producer.disconnect().catch(() => undefined)))
    )
    return producer
  })
  const disconnect = (producer: ProducerHandle) =>
    Effect.tryPromise(() => producer.disconnect()).pipe(Effect.timeout("10 seconds"), Effect.ignore)

  let current: ProducerHandle | undefined = yield* connect()
  let connected = yield* Deferred.make<void>()
  yield* Deferred.succeed(connected, undefined)
  let recreations = 0
  const inFlight = new Map<ProducerHandle, number>()
  const retired = new Set<ProducerHandle>()
  yield* Effect.addFinalizer(() =>
    Effect.forEach([...(current === undefined ? [] : [current]), ...retired], disconnect, { discard: true })
  )

  const release = (producer: ProducerHandle) =>
    Effect.suspend(() => {
      const left = (inFlight.get(producer) ?? 1) - 1
      if (left > 0) inFlight.set(producer, left)
      else inFlight.delete(producer)
      if (left > 0 || !retired.has(producer)) return Effect.void
      retired.delete(producer)
      return Effect.forkIn(disconnect(producer), scope)
    })

  /** Replaces `producer`, unless another request already has. */
  const replace = (producer: ProducerHandle, state: string) =>
    Effect.gen(function* () {
      if (current !== producer) return
      current = undefined
      connected = yield* Deferred.make<void>()
      recreations++
      const next = connected
      yield* Effect.logWarning(`Kafka producer cannot go on (${state}): replacing it with a new producer id`)
      if ((inFlight.get(producer) ?? 0) === 0) yield* Effect.forkIn(disconnect(producer), scope)
      else retired.add(producer)
      yield* connect().pipe(
        Effect.tapError((error) => Effect.logWarning("the replacement Kafka producer cannot connect yet", error)),
        Effect.retry(reconnect),
        Effect.flatMap((fresh) =>
          Effect.suspend(() => {
            current = fresh
            return Deferred.succeed(next, undefined)
          })
        ),
        Effect.forkIn(scope)
      )
    })

  /**
   * Sends the records of one topic's partitions (each partition at most once) as one kafkajs send
   * (acks=all): one produce request per broker, carrying every partition it leads. Answers each
   * partition's first offset. With `patience`, a send not answered by then is given up: it fails, and
   * the producer is replaced like after any failed request (kafkajs may still send it).
   */
  const sendPartitions = (
    topic: string,
    parts: ReadonlyArray<PartitionRecords>,
    patience?: Duration.Input | undefined
  ) =>
    Effect.suspend(() => {
      const producer = current
      if (producer === undefined) {
        return Effect.fail(
          new EventLogError({ operation: "append", message: "the Kafka producer is being replaced", transient: true })
        )
      }
      inFlight.set(producer, (inFlight.get(producer) ?? 0) + 1)
      return Effect.tryPromise({
        try: () =>
          producer.send({
            topic,
            acks: -1,
            messages: parts.flatMap(({ partition, records }) => records.map((record) => toMessage(partition, record)))
          }),
        catch: failWith("append")
      }).pipe(
        patience === undefined
          ? identity
          : Effect.timeoutOrElse({
              duration: patience,
              orElse: () =>
                Effect.fail(
                  new EventLogError({
                    operation: "append",
                    message: `Kafka did not answer a request for ${parts.length} partitions of ${topic} in ${Duration.format(Duration.fromInputUnsafe(patience))}: given up`,
                    transient: true
                  })
                )
            }),
        Effect.ensuring(release(producer)),
        // Any failed request leaves the producer unsafe: kafkajs advances a partition's sequence number
        // before it sends and rolls it back when the request fails, yet a request may have been appended
        // (a timeout under acks=all, a give-up after a retriable answer). The next request would reuse
        // that sequence, and the broker would answer it as a duplicate of the one already in the log:
        // new readings dropped while the caller is told they are stored. A new producer id starts over.
        Effect.tapError((error) =>
          replace(producer, lostProducerState(error.cause) ?? `a failed request: ${error.message.slice(0, 200)}`)
        ),
        Effect.map((metadata) => {
          const offsets = new Map<number, number>()
          for (const meta of metadata) {
            const offset = meta.baseOffset ?? meta.offset
            if (meta.topicName === topic && offset !== undefined) offsets.set(meta.partition, Number(offset))
          }
          return offsets as ReadonlyMap<number, number>
        })
      )
    })

  /** Sends one partition's records as one produce request (acks=all); answers the first record's offset. */
  const send = (topic: string, partition: number, records: ReadonlyArray<ProducerRecord>) =>
    sendPartitions(topic, [{ partition, records }]).pipe(
      Effect.flatMap((offsets) => offsetOf(topic, partition, offsets))
    )

  return {
    send,
    sendPartitions,
    /** Waits until a producer is connected (at once, unless one is being replaced). */
    ready: Effect.suspend(() => Deferred.await(connected)),
    /** Whether a producer is connected now. */
    isReady: Effect.sync(() => current !== undefined),
    /** How many times the producer has been replaced. */
    recreations: Effect.sync(() => recreations)
  }
})
