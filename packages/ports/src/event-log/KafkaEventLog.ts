import { type Array as Arr, Config, Deferred, Duration, Effect, Layer, Option, Queue, Schedule, Stream } from "effect"
import type { Consumer, EachBatchPayload, KafkaMessage, Message, PartitionMetadata } from "kafkajs"
import { configRefusal, intInRange } from "../ConfigRange.ts"
import { failureOf } from "../StoreFailure.ts"
import { makeAppendLanes } from "./AppendLanes.ts"
import { makeCombinedSends } from "./CombinedSends.ts"
import {
  type ConsumeOptions,
  type ConsumerRecord,
  EventLog,
  EventLogError,
  type FollowOptions,
  type PartitionBatch,
  type ProducerRecord,
  type RecordPosition
} from "./EventLog.ts"
import { describeKafkaSecurity, kafkaClientSecurity, kafkaSecurityConfig } from "./KafkaSecurity.ts"
import { partitionForKey } from "./Partitioner.ts"
import { makeRecreatingProducer, type ProducerHandle } from "./RecreatingProducer.ts"

export { type KafkaSecurity, kafkaClientSecurity, kafkaSecurityConfig } from "./KafkaSecurity.ts"
export type { ProducerHandle } from "./RecreatingProducer.ts"

import { Topics } from "./Topics.ts"

/**
 * `KAFKA_BROKERS` (comma-separated), `KAFKA_CLIENT_ID`, `KAFKA_REPLICATION_FACTOR`,
 * `KAFKA_MIN_INSYNC_REPLICAS`, `KAFKA_APPEND_TIMEOUT`, `KAFKA_APPEND_QUEUE`, `KAFKA_PRODUCER_LINGER_MS`,
 * `KAFKA_PRODUCER_BATCH_BYTES`, `KAFKA_CONSUMER_MAX_WAIT_MS`,
 * `KAFKA_CONSUMER_MIN_BYTES`, `KAFKA_CONSUMER_PARTITIONS_IN_FLIGHT`, `KAFKA_CONSUMER_MAX_BYTES_PER_PARTITION`, and TLS and SASL
 * (`KAFKA_SSL*`, `KAFKA_SASL_*`: see `KafkaSecurity.ts`).
 */
export const kafkaConfig = Config.all({
  brokers: Config.String("KAFKA_BROKERS"),
  clientId: Config.String("KAFKA_CLIENT_ID").pipe(Config.withDefault("dexmon")),
  replicationFactor: Config.Int("KAFKA_REPLICATION_FACTOR").pipe(Config.withDefault(1)),
  minInsyncReplicas: Config.Int("KAFKA_MIN_INSYNC_REPLICAS").pipe(Config.withDefault(1)),
  appendTimeout: Config.Duration("KAFKA_APPEND_TIMEOUT").pipe(Config.withDefault(Duration.seconds(10))),
  appendQueue: Config.Int("KAFKA_APPEND_QUEUE").pipe(Config.withDefault(10_000)),
  // The producer's linger.ms and batch.size (`AppendLanes.ts`); the batch is never above a topic's max.message.bytes.
  producerLingerMs: intInRange("KAFKA_PRODUCER_LINGER_MS", 0, 0, 60_000),
  producerBatchBytes: Config.Int("KAFKA_PRODUCER_BATCH_BYTES").pipe(Config.option),
  // A consumer's fetch linger: the broker answers once it holds this many bytes for it, or after this long.
  consumerMaxWaitMs: Config.Int("KAFKA_CONSUMER_MAX_WAIT_MS").pipe(Config.withDefault(5_000)),
  consumerMinBytes: Config.Int("KAFKA_CONSUMER_MIN_BYTES").pipe(Config.withDefault(1)),
  // How many of its partitions' fetched batches a consumer hands to its pipeline at once (kafkajs's
  // partitionsConsumedConcurrently); the default is the topics' default partition count.
  consumerPartitionsInFlight: intInRange("KAFKA_CONSUMER_PARTITIONS_IN_FLIGHT", 8, 1, 1_000),
  // How many bytes one fetch brings per partition (kafkajs's maxBytesPerPartition; Kafka's
  // max.partition.fetch.bytes): the records of a fetch are held until their batches are committed, so
  // this bounds a consumer's memory in flight (about partitions in flight × this, twice over as decoded).
  // 256 KiB (about a thousand readings) rather than kafkajs's 1 MiB: the notifier's peak under
  // `bench:memory` fell from 251-258 to 211-216 MB, its drain of 100,000 readings from 112-122 s to 131-136 s.
  consumerMaxBytesPerPartition: intInRange("KAFKA_CONSUMER_MAX_BYTES_PER_PARTITION", 262_144, 16_384, 67_108_864),
  security: kafkaSecurityConfig
}).pipe(
  Config.mapEffect(({ brokers, ...rest }) =>
    // An idle partition's first append waits the linger before it is sent: as long as the timeout, and
    // every such append would be withdrawn unsent.
    rest.producerLingerMs >= Duration.toMillis(rest.appendTimeout)
      ? configRefusal(
          `KAFKA_PRODUCER_LINGER_MS (${rest.producerLingerMs} ms) must be shorter than KAFKA_APPEND_TIMEOUT (${Duration.format(rest.appendTimeout)})`
        )
      : Effect.succeed({
          brokers: brokers
            .split(",")
            .map((broker) => broker.trim())
            .filter((broker) => broker !== ""),
          ...rest
        })
  )
)

const failWith = failureOf((fields) => new EventLogError(fields))

/** How often the leaders of the topics' partitions are read again (for grouping sends by broker). */
const LEADERS_REFRESH = "30 seconds"

/** The broker's default `max.message.bytes`, for a topic whose configuration cannot be read. */
const DEFAULT_MAX_MESSAGE_BYTES = 1_048_588

/** kafkajs's `ConfigResourceTypes.TOPIC` (the named export is not reachable from an ES module). */
const TOPIC_RESOURCE = 2

export interface KafkaEventLogOptions {
  /** Wraps each producer the layer creates (tests inject broker answers through it). */
  readonly wrapProducer?: (producer: ProducerHandle) => ProducerHandle
}

const toHeaders = (headers: KafkaHeaders): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (value === undefined) continue
    out[name] = Array.isArray(value)
      ? String(value[value.length - 1])
      : Buffer.isBuffer(value)
        ? value.toString("utf8")
        : String(value)
  }
  return out
}
type KafkaHeaders = Message["headers"]

const toConsumerRecord = (topic: string, partition: number, message: KafkaMessage): ConsumerRecord => ({
  topic,
  partition,
  offset: Number(message.offset),
  key: message.key?.toString("utf8") ?? "",
  value: message.value ?? Buffer.alloc(0),
  headers: toHeaders(message.headers),
  timestamp: Number(message.timestamp)
})

/** What kafkajs hands `eachBatch` (its type leaves out `isRunning` and `isStale`). */
type BatchPayload = EachBatchPayload & { isRunning: () => boolean; isStale: () => boolean }

/**
 * Waits from a kafkajs batch handler until `pipelineStep` is done (the pipeline took a batch, or
 * committed it: true) or the stream stops first (false): Kafka is read no faster than it is processed,
 * and a rebalance waits for what was handed over. Meanwhile keeps the
 * membership alive: a pipeline waiting out a store outage (or a slow live-stream client) must not be
 * mistaken for a dead member and have its partitions taken away mid-batch.
 */
const handOver = (
  pipelineStep: Effect.Effect<unknown>,
  stopped: Deferred.Deferred<boolean>,
  heartbeat: () => Promise<void>
): Promise<boolean> => {
  const heartbeats = setInterval(() => {
    heartbeat().catch(() => undefined)
  }, 3_000)
  return Effect.runPromise(
    Effect.raceFirst(pipelineStep.pipe(Effect.as(true)), Deferred.await(stopped).pipe(Effect.as(false)))
  ).finally(() => clearInterval(heartbeats))
}

/**
 * How the ids of `follow`'s throw-away groups (one per follow, one member, never a commit) begin, by
 * `KAFKA_CLIENT_ID`: an operator (or a test) tells them from the real consumer groups, and whose they are.
 */
export const followGroupPrefix = (clientId: string) => `${clientId}-follow-`

/**
 * The event log on Apache Kafka (kafkajs).
 *
 * - One idempotent producer with `acks=all`, replaced when the broker says it
 *   lost its state (`RecreatingProducer.ts`). Appends queue per partition and
 *   each partition's sender has one produce request in flight, sized by the
 *   topic's `max.message.bytes` (`AppendLanes.ts`): a slow or leaderless
 *   partition holds up only its own appends, and a full queue refuses at once.
 * - Topics are created with `KAFKA_REPLICATION_FACTOR` and `KAFKA_MIN_INSYNC_REPLICAS`.
 * - Partitions are chosen here with Kafka's murmur2 partitioner (the same
 *   function the embedded log uses), so a record's position is known exactly.
 * - A consumer hands each fetched partition batch downstream and waits until it
 *   is taken (backpressure), then until it is committed (so a rebalance waits for
 *   it); offsets are committed only by `batch.commit`, and never for a partition
 *   this member no longer owns after a rebalance.
 */
/**
 * The retry of the producer's Kafka client, which kafkajs uses to connect and to refresh metadata: each
 * wait at most a second, so a replacement producer tries a broker that is back within about a second.
 */
export const PRODUCER_CLIENT_RETRY = { retries: 8, initialRetryTime: 100, maxRetryTime: 1_000 } as const

export const makeWith = Effect.fnUntraced(function* (options: KafkaEventLogOptions = {}) {
  const config = yield* kafkaConfig
  // Loaded here: a process whose event log is in PostgreSQL never loads kafkajs.
  const { Kafka, logLevel, Partitioners } = yield* Effect.promise(() => import("kafkajs"))
  const topics = yield* Topics
  // kafkajs logs through this service's logger (JSON or pretty, with its annotations), not its own console format.
  const runLog = Effect.runForkWith(yield* Effect.context<never>())
  const client = (retry: {
    readonly retries: number
    readonly initialRetryTime: number
    readonly maxRetryTime: number
  }) =>
    new Kafka({
      clientId: config.clientId,
      brokers: [...config.brokers],
      logLevel: logLevel.WARN,
      logCreator:
        () =>
        ({ namespace, level, log }) => {
          const { message, ...fields } = log
          const line = `kafkajs ${namespace}: ${message}`
          runLog(
            (level <= logLevel.ERROR ? Effect.logError(line) : Effect.logWarning(line)).pipe(
              Effect.annotateLogs(fields as Record<string, unknown>)
            )
          )
        },
      retry: { ...retry },
      ...kafkaClientSecurity(config.security)
    })
  const kafka = client({ retries: 8, initialRetryTime: 100, maxRetryTime: 5_000 })
  // The producer's own client: kafkajs connects (and refreshes metadata) with the client's retry, not the
  // producer's, so under the shared client a replacement producer's connect would wait up to 5 s between tries
  // inside kafkajs, and a broker that came back would be written to again only that much later.
  const producerKafka = client(PRODUCER_CLIENT_RETRY)

  const admin = kafka.admin()
  yield* Effect.acquireRelease(Effect.tryPromise({ try: () => admin.connect(), catch: failWith("connect") }), () =>
    Effect.promise(() => admin.disconnect())
  )
  const created = yield* Effect.tryPromise({
    try: () =>
      admin.createTopics({
        waitForLeaders: true,
        topics: topics.specs.map((topic) => ({
          topic: topic.name,
          numPartitions: topic.partitions,
          replicationFactor: config.replicationFactor,
          // With acks=all, a write is acknowledged once this many replicas hold it (2 of 3 in production).
          configEntries: [{ name: "min.insync.replicas", value: String(config.minInsyncReplicas) }]
        }))
      }),
    catch: failWith("create topics")
  })
  const metadata = yield* Effect.tryPromise({
    try: () => admin.fetchTopicMetadata({ topics: topics.specs.map((topic) => topic.name) }),
    catch: failWith("topic metadata")
  }).pipe(Effect.retry({ schedule: Schedule.exponential("100 millis"), times: 8, while: (error) => error.transient }))
  const partitionCounts = new Map(metadata.topics.map((topic) => [topic.name, topic.partitions.length]))
  yield* Effect.logInfo(
    `Kafka ${config.brokers.join(",")} (${describeKafkaSecurity(config.security)}): topics ${[...partitionCounts].map(([n, p]) => `${n} (${p} partitions)`).join(", ")}${created ? " created" : ""}`
  )

  // A record batch larger than its topic's max.message.bytes is refused whole (MESSAGE_TOO_LARGE): the
  // append lanes size each request by it.
  const described = yield* Effect.tryPromise({
    try: () =>
      admin.describeConfigs({
        includeSynonyms: false,
        resources: topics.specs.map((topic) => ({
          type: TOPIC_RESOURCE,
          name: topic.name,
          configNames: ["max.message.bytes", "min.insync.replicas"]
        }))
      }),
    catch: failWith("topic configuration")
  }).pipe(
    // A topic created a moment ago may not be known to every part of the broker yet (UNKNOWN_TOPIC_OR_PARTITION).
    Effect.retry({ schedule: Schedule.exponential("100 millis"), times: 8, while: (error) => error.transient })
  )
  const maxMessageBytes = new Map<string, number>()
  for (const resource of described.resources) {
    const entry = (name: string) => resource.configEntries.find((e) => e.configName === name)?.configValue
    maxMessageBytes.set(resource.resourceName, Number(entry("max.message.bytes") ?? DEFAULT_MAX_MESSAGE_BYTES))
    const minInsync = Number(entry("min.insync.replicas"))
    if (minInsync !== config.minInsyncReplicas) {
      yield* Effect.logWarning(
        `topic ${resource.resourceName} has min.insync.replicas=${minInsync}, not KAFKA_MIN_INSYNC_REPLICAS=${config.minInsyncReplicas} (it existed before; DexMon does not alter it)`
      )
    }
  }

  // The idempotent producer retries without limit (kafkajs's own requirement for its sequence numbers);
  // an append that is not acknowledged within KAFKA_APPEND_TIMEOUT fails towards its caller instead.
  // Retries at most a second apart, connects too (its own client): a broker that comes back is written to
  // again within about a second.
  const producer = yield* makeRecreatingProducer(() => {
    const created = producerKafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
      retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 100, maxRetryTime: 1_000 }
    })
    return options.wrapProducer?.(created) ?? created
  })
  // Each partition's leader, for the combined sends: read again every LEADERS_REFRESH and after a failed
  // request (kafkajs follows a leader that moves by itself; a stale entry only groups a partition with the
  // wrong broker's for a while, bounded by the combined requests' patience).
  const leaders = new Map<string, number>()
  const learnLeaders = (
    topicsMetadata: ReadonlyArray<{ name: string; partitions: ReadonlyArray<PartitionMetadata> }>
  ) => {
    for (const topic of topicsMetadata) {
      for (const partition of topic.partitions) leaders.set(`${topic.name}/${partition.partitionId}`, partition.leader)
    }
  }
  learnLeaders(metadata.topics)
  const refreshLeaders = Effect.tryPromise({
    try: () => admin.fetchTopicMetadata({ topics: topics.specs.map((topic) => topic.name) }),
    catch: failWith("topic metadata")
  }).pipe(
    Effect.tap((fresh) => Effect.sync(() => learnLeaders(fresh.topics))),
    Effect.catch((error) => Effect.logWarning("cannot read the partitions' leaders again", error))
  )
  yield* refreshLeaders.pipe(
    Effect.repeat(Schedule.spaced(LEADERS_REFRESH)),
    Effect.delay(LEADERS_REFRESH),
    Effect.forkScoped
  )
  const groupOf = (topic: string, partition: number) => {
    const leader = leaders.get(`${topic}/${partition}`) ?? -1
    return leader >= 0 ? `broker ${leader}` : `partition ${partition}`
  }
  const sends = yield* makeCombinedSends(producer.sendPartitions, {
    groupOf,
    ready: producer.ready,
    patience: config.appendTimeout,
    onGiveUp: Effect.forkIn(refreshLeaders, yield* Effect.scope).pipe(Effect.asVoid)
  })
  const lanes = yield* makeAppendLanes(sends, {
    maxQueuedRecords: config.appendQueue,
    appendTimeout: config.appendTimeout,
    maxBatchBytes: (topic) => maxMessageBytes.get(topic) ?? DEFAULT_MAX_MESSAGE_BYTES,
    maxRequestBytes: Option.getOrUndefined(config.producerBatchBytes),
    linger: Duration.millis(config.producerLingerMs),
    ready: producer.ready
  })

  const append = Effect.fn("EventLog.append")(function* (topic: string, records: ReadonlyArray<ProducerRecord>) {
    if (records.length === 0) return [] as ReadonlyArray<RecordPosition>
    const count = partitionCounts.get(topic)
    if (count === undefined)
      return yield* new EventLogError({ operation: "append", message: `unknown topic ${topic}`, transient: false })
    return yield* lanes.append(
      topic,
      records,
      records.map((r) => partitionForKey(r.key, count))
    )
  })

  const consume = (options: ConsumeOptions): Stream.Stream<PartitionBatch, EventLogError> =>
    Stream.unwrap(
      Effect.gen(function* () {
        if (!partitionCounts.has(options.topic)) {
          return yield* new EventLogError({
            operation: "consume",
            message: `unknown topic ${options.topic}`,
            transient: false
          })
        }
        const batches = yield* Queue.bounded<PartitionBatch, EventLogError>(1)
        const stopped = yield* Deferred.make<boolean>()
        const consumer: Consumer = kafka.consumer({
          groupId: options.groupId,
          allowAutoTopicCreation: false,
          maxBytesPerPartition: config.consumerMaxBytesPerPartition,
          maxWaitTimeInMs: config.consumerMaxWaitMs,
          minBytes: config.consumerMinBytes,
          sessionTimeout: 30_000,
          heartbeatInterval: 3_000
        })
        const owned = new Set<number>()
        // kafkajs emits GROUP_JOIN after every join and sync (the first one and each rebalance) with the whole
        // assignment, and STOP when the member has left the group (the stream ends, or a crash before its restart).
        consumer.on(consumer.events.GROUP_JOIN, (event) => {
          owned.clear()
          for (const partition of event.payload.memberAssignment[options.topic] ?? []) owned.add(partition)
          options.onAssigned?.([...owned].sort((a, b) => a - b))
        })
        consumer.on(consumer.events.STOP, () => {
          owned.clear()
          options.onAssigned?.([])
        })
        consumer.on(consumer.events.CRASH, (event) => {
          // kafkajs restarts the consumer itself after retriable errors; anything else ends the stream.
          if (!event.payload.restart) Effect.runFork(Queue.fail(batches, failWith("consume")(event.payload.error)))
        })
        const run = (fn: () => Promise<unknown>, operation: string) =>
          Effect.tryPromise({ try: fn, catch: failWith(operation) })

        const commit = (partition: number, nextOffset: number) =>
          Effect.suspend(() =>
            owned.has(partition)
              ? run(
                  () => consumer.commitOffsets([{ topic: options.topic, partition, offset: String(nextOffset) }]),
                  "commit"
                )
              : Effect.logWarning(
                  `not committing ${options.topic}/${partition}: the partition was reassigned; its new owner redelivers from the last commit`
                )
          ).pipe(Effect.withSpan("EventLog.commit", { attributes: { partition, nextOffset } }))

        // kafkajs rejoins the group (a rebalance) only once every running `eachBatch` has returned, so a
        // handler returns only when the pipeline has committed what it handed over (or has stopped): a
        // partition's batches are never in this member's pipeline while its next owner reads them too.
        // Slices of one fetch are handed over without waiting, so their decode, write and commit overlap.
        const eachBatch = async ({ batch, resolveOffset, heartbeat, isRunning, isStale }: BatchPayload) => {
          const maxBatchSize = options.maxBatchSize ?? 500
          let lastCommitted: Deferred.Deferred<void> | undefined
          try {
            for (let start = 0; start < batch.messages.length && isRunning() && !isStale(); start += maxBatchSize) {
              const slice = batch.messages.slice(start, start + maxBatchSize)
              const records = slice.map((message) => toConsumerRecord(batch.topic, batch.partition, message))
              const last = records[records.length - 1]!.offset
              const committed = Deferred.makeUnsafe<void>()
              const handedOver = await handOver(
                Queue.offer(batches, {
                  topic: batch.topic,
                  partition: batch.partition,
                  records,
                  commit: commit(batch.partition, last + 1).pipe(
                    Effect.tap(() => Deferred.succeed(committed, undefined))
                  )
                }),
                stopped,
                heartbeat
              )
              if (!handedOver) return
              lastCommitted = committed
              resolveOffset(String(last))
              await heartbeat()
            }
          } finally {
            // Commits are made in offset order: the last slice's covers the slices before it.
            if (lastCommitted !== undefined) await handOver(Deferred.await(lastCommitted), stopped, heartbeat)
          }
        }

        yield* Effect.acquireRelease(
          run(() => consumer.connect(), "join group"),
          () => Effect.promise(() => consumer.disconnect())
        )
        // Runs before the disconnect: a batch handler waiting to hand a batch to a pipeline that has
        // stopped would otherwise keep `disconnect` waiting for ever. That batch is neither resolved nor committed.
        yield* Effect.addFinalizer(() => Deferred.succeed(stopped, true))
        yield* run(() => consumer.subscribe({ topic: options.topic, fromBeginning: true }), "join group")
        yield* run(
          () =>
            consumer.run({
              autoCommit: false,
              eachBatchAutoResolve: false,
              partitionsConsumedConcurrently: config.consumerPartitionsInFlight,
              eachBatch: eachBatch as (payload: EachBatchPayload) => Promise<void>
            }),
          "join group"
        )
        return Stream.fromQueue(batches)
      })
    )

  /**
   * kafkajs cannot assign partitions to a consumer by hand: a consumer reads what its group gives it.
   * So each follow joins a group of its own (a fresh id: its only member is given every partition)
   * and, on every GROUP_JOIN (the first and any rejoin after a lost session), `seek`s each partition
   * to the next offset it has not yet handed downstream. The event fires after the assignment is in
   * place and before the next fetch, which applies pending seeks first and drops any fetch answered
   * for a partition with a seek pending, so no record is skipped or handed twice across a rejoin.
   * With `autoCommit: false` a seek only moves the fetch position (with autoCommit kafkajs would
   * commit it), and nothing else is committed; kafkajs commits only when an offset is out of range
   * (retention overtook the stream), which is why the group is deleted when the stream ends, after
   * the consumer has left it.
   */
  const follow = (
    topic: string,
    from: ReadonlyMap<number, number>,
    options?: FollowOptions
  ): Stream.Stream<ConsumerRecord, EventLogError> =>
    Stream.unwrap(
      Effect.gen(function* () {
        if (!partitionCounts.has(topic)) {
          return yield* new EventLogError({ operation: "follow", message: `unknown topic ${topic}`, transient: false })
        }
        const maxBatchSize = options?.maxBatchSize ?? 500
        const run = (fn: () => Promise<unknown>, operation: string) =>
          Effect.tryPromise({ try: fn, catch: failWith(operation) })
        const bounds = yield* Effect.tryPromise({
          try: () => admin.fetchTopicOffsets(topic),
          catch: failWith("follow")
        })
        // The next offset to hand downstream, per partition: where the consumer seeks after each join.
        // Kept within what the log holds: a seek out of range would make kafkajs reset and commit.
        const positions = new Map(
          bounds.map(({ partition, low, high }) => {
            const start = from.get(partition) ?? Number(high)
            return [partition, Math.min(Math.max(start, Number(low)), Number(high))] as const
          })
        )
        const groupId = `${followGroupPrefix(config.clientId)}${crypto.randomUUID()}`
        const chunks = yield* Queue.bounded<Arr.NonEmptyReadonlyArray<ConsumerRecord>, EventLogError>(1)
        const stopped = yield* Deferred.make<boolean>()
        const consumer: Consumer = kafka.consumer({
          groupId,
          allowAutoTopicCreation: false,
          maxBytesPerPartition: config.consumerMaxBytesPerPartition,
          sessionTimeout: 30_000,
          heartbeatInterval: 3_000
        })
        consumer.on(consumer.events.GROUP_JOIN, (event) => {
          for (const partition of event.payload.memberAssignment[topic] ?? []) {
            // A partition added to the topic since the stream started has no position: it is read from its
            // beginning (`fromBeginning` below), all of it being new.
            const offset = positions.get(partition)
            if (offset !== undefined) consumer.seek({ topic, partition, offset: String(offset) })
          }
        })
        consumer.on(consumer.events.CRASH, (event) => {
          if (!event.payload.restart) Effect.runFork(Queue.fail(chunks, failWith("follow")(event.payload.error)))
        })

        const eachBatch = async ({ batch, resolveOffset, heartbeat, isRunning, isStale }: BatchPayload) => {
          const position = positions.get(batch.partition) ?? 0
          const fresh = batch.messages.filter((message) => Number(message.offset) >= position)
          // Only records already handed over (a fetch from before a seek): fetch on from the position.
          if (fresh.length === 0) return resolveOffset(String(position - 1))
          for (let start = 0; start < fresh.length && isRunning() && !isStale(); start += maxBatchSize) {
            const records = fresh
              .slice(start, start + maxBatchSize)
              .map((message) => toConsumerRecord(batch.topic, batch.partition, message))
            const last = records[records.length - 1]!.offset
            const chunk = records as Arr.NonEmptyArray<ConsumerRecord>
            if (!(await handOver(Queue.offer(chunks, chunk), stopped, heartbeat))) return
            positions.set(batch.partition, last + 1)
            resolveOffset(String(last))
            await heartbeat()
          }
        }

        // Finalizers run in reverse: stop handing over, leave the group (disconnect), then delete it.
        // Both bounded: during a broker outage they would retry past a shutdown's deadline, and an empty
        // group without commits is removed by the broker anyway.
        yield* Effect.addFinalizer(() =>
          run(() => admin.deleteGroups([groupId]), "follow").pipe(
            Effect.timeout("3 seconds"),
            Effect.catch((error) => Effect.logDebug(`follow group ${groupId} not deleted: ${error.message}`))
          )
        )
        yield* Effect.acquireRelease(
          run(() => consumer.connect(), "follow"),
          () => Effect.tryPromise(() => consumer.disconnect()).pipe(Effect.timeout("8 seconds"), Effect.ignore)
        )
        yield* Effect.addFinalizer(() => Deferred.succeed(stopped, true))
        yield* run(() => consumer.subscribe({ topic, fromBeginning: true }), "follow")
        yield* run(
          () =>
            consumer.run({
              autoCommit: false,
              eachBatchAutoResolve: false,
              partitionsConsumedConcurrently: 1,
              eachBatch: eachBatch as (payload: EachBatchPayload) => Promise<void>
            }),
          "follow"
        )
        return Stream.fromQueue(chunks).pipe(Stream.flattenArray)
      })
    )

  const offsetsForTime = Effect.fn("EventLog.offsetsForTime")(function* (topic: string, time: number) {
    if (!partitionCounts.has(topic)) {
      return yield* new EventLogError({
        operation: "offsets for time",
        message: `unknown topic ${topic}`,
        transient: false
      })
    }
    // kafkajs answers a partition with no record that late with its end offset (Kafka itself says -1).
    const offsets = yield* Effect.tryPromise({
      try: () => admin.fetchTopicOffsetsByTimestamp(topic, time),
      catch: failWith("offsets for time")
    })
    return new Map(offsets.map((o) => [o.partition, Number(o.offset)])) as ReadonlyMap<number, number>
  })

  const endOffsets = Effect.fn("EventLog.endOffsets")(function* (topic: string) {
    const offsets = yield* Effect.tryPromise({
      try: () => admin.fetchTopicOffsets(topic),
      catch: failWith("end offsets")
    })
    return new Map(offsets.map((o) => [o.partition, Number(o.high)])) as ReadonlyMap<number, number>
  })

  const committedOffsets = Effect.fn("EventLog.committedOffsets")(function* (groupId: string, topic: string) {
    const [offsets] = yield* Effect.tryPromise({
      try: () => admin.fetchOffsets({ groupId, topics: [topic] }),
      catch: failWith("committed offsets")
    })
    // Kafka answers -1 for a partition the group has not committed.
    return new Map(
      (offsets?.partitions ?? [])
        .filter((partition) => Number(partition.offset) >= 0)
        .map((partition) => [partition.partition, Number(partition.offset)])
    ) as ReadonlyMap<number, number>
  })

  // Ready only while appends can be sent: the broker answers, and the producer is not being replaced.
  const ping = Effect.gen(function* () {
    if (!(yield* producer.isReady)) {
      return yield* new EventLogError({
        operation: "ping",
        message: "the Kafka producer is being replaced",
        transient: true
      })
    }
    yield* Effect.tryPromise({ try: () => admin.describeCluster(), catch: failWith("ping") })
  })

  return EventLog.of({ append, consume, endOffsets, committedOffsets, offsetsForTime, follow, ping })
})

export const make = makeWith()

/** The event log on the Kafka cluster `KAFKA_BROKERS` names. */
export const layer = Layer.effect(EventLog, make)

/** The same, with each producer wrapped (for tests that inject broker answers). */
export const layerWith = (options: KafkaEventLogOptions) => Layer.effect(EventLog, makeWith(options))
