import { decodeEventsTopicBytes, type EventsTopicMessage, GlucoseEvent } from "@dexmon/domain"
import { Metrics } from "@dexmon/observability"
import {
  type ConsumerRecord,
  EventLog,
  firstAppendPosition,
  ReadingStore,
  type ReadingWrite,
  Topics
} from "@dexmon/ports"
import { consumerPipeline, superviseConsumer } from "@dexmon/streams"
import { Config, Effect, Layer } from "effect"

/**
 * A reading's event becomes a write, with where it was first appended (what orders it against other
 * events at its key); an alert action (the notifier's business) is passed over, never dead-lettered.
 */
const toReadingWrite = (message: EventsTopicMessage, record: ConsumerRecord): ReadingWrite | undefined =>
  message instanceof GlucoseEvent
    ? {
        event_id: message.event_id,
        sensor_id: message.sensor_id,
        user_id: message.user_id,
        timestamp: message.timestamp,
        glucose_value: message.glucose_value,
        source: message.source,
        sensor_limit: message.sensor_limit,
        position: firstAppendPosition(record)
      }
    : undefined

export const ProcessorConfig = Config.all({
  groupId: Config.String("DEXMON_PROCESSOR_GROUP").pipe(Config.withDefault("dexmon-processor")),
  maxBatchSize: Config.Int("DEXMON_PROCESSOR_BATCH_SIZE").pipe(Config.withDefault(500)),
  retries: Config.Int("DEXMON_WRITE_RETRIES").pipe(Config.withDefault(5))
})

/**
 * The processor: reads `glucose.events` in partition order, drops events
 * already seen in the batch, applies the rest to the readings store under the
 * conflict rule in one transaction per batch, sends what cannot be applied to
 * `glucose.events.dlq`, and commits the batch only after all of that is durable.
 */
export const ProcessorLive = Layer.effectDiscard(
  Effect.gen(function* () {
    const eventLog = yield* EventLog
    const store = yield* ReadingStore
    const { names } = yield* Topics
    const config = yield* ProcessorConfig
    const pipeline = consumerPipeline({
      eventLog,
      topic: names.events,
      groupId: config.groupId,
      maxBatchSize: config.maxBatchSize,
      decode: decodeEventsTopicBytes,
      toWrite: toReadingWrite,
      // A redelivered event is applied once; distinct events at one key all reach the store, in order.
      writeKey: (write) => write.event_id,
      write: (writes) => store.upsert(writes).pipe(Metrics.timeStoreWrite("readings")),
      retries: config.retries,
      deadLetterTopic: names.eventsDlq
    })
    yield* Effect.forkScoped(superviseConsumer("processor", pipeline))
    yield* Effect.logInfo(`processor consuming ${names.events} as group ${config.groupId}`)
  })
)
