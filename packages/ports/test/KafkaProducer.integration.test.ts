import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer } from "effect"
import kafkajs from "kafkajs"
import { EventLog, KafkaEventLog, partitionForKey, type TopicSpec, Topics } from "../src/index.ts"
import { requiredServer } from "../src/testing/index.ts"

const brokers = requiredServer("KAFKA_BROKERS")
/** Topics and a client id of this run's own: the cluster is shared with other runs. */
const run = `producer-${Date.now().toString(36)}`
const encoder = new TextEncoder()

const eventLogOn = (
  specs: ReadonlyArray<TopicSpec>,
  env: Record<string, string> = {},
  options: KafkaEventLog.KafkaEventLogOptions = {}
) =>
  KafkaEventLog.layerWith(options).pipe(
    Layer.provide(Topics.exactly(specs)),
    Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord({ ...process.env, KAFKA_CLIENT_ID: run, ...env })))
  )

/** An admin client of the test's own, beside the adapter's, so the adapter cannot answer for itself. */
const probeAdmin = Effect.acquireRelease(
  Effect.sync(() =>
    new kafkajs.Kafka({
      clientId: `${run}-probe`,
      brokers: brokers.split(","),
      logLevel: kafkajs.logLevel.NOTHING
    }).admin()
  ).pipe(Effect.tap((admin) => Effect.promise(() => admin.connect()))),
  (admin) => Effect.promise(() => admin.disconnect())
)

const topicConfig = (topic: string, name: string) =>
  Effect.gen(function* () {
    const admin = yield* probeAdmin
    const described = yield* Effect.promise(() =>
      admin.describeConfigs({
        includeSynonyms: false,
        resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topic, configNames: [name] }]
      })
    )
    return described.resources[0]?.configEntries.find((entry) => entry.configName === name)?.configValue
  }).pipe(Effect.scoped)

/** A reading's event as the receiver appends it: the JSON value and the headers, with a trace context. */
const readingEvent = (sensor: string, n: number) => ({
  key: sensor,
  value: encoder.encode(
    JSON.stringify({
      schema_version: 1,
      event_id: `01J${n.toString(36).padStart(23, "0")}`,
      sensor_id: sensor,
      user_id: "user-with-a-long-identifier-from-the-issuer",
      timestamp: new Date(1_767_225_600_000 + n * 300_000).toISOString(),
      glucose_value: 100 + (n % 80),
      source: "SENSOR",
      received_at: "2026-01-01T12:00:00.000Z",
      settings_version: 3
    })
  ),
  headers: {
    "content-type": "application/json",
    "dexmon-schema": "glucose-event",
    "dexmon-schema-version": "1",
    "dexmon-event-id": `01J${n.toString(36).padStart(23, "0")}`,
    traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
  }
})

describe("KafkaEventLog's producer on a real broker", () => {
  it.effect(
    "topics are created with KAFKA_MIN_INSYNC_REPLICAS (read back from the broker)",
    () =>
      Effect.gen(function* () {
        const topic = `${run}.isr`
        yield* Effect.provide(
          EventLog.use(() => Effect.void),
          eventLogOn([{ name: topic, partitions: 1 }], { KAFKA_MIN_INSYNC_REPLICAS: "2" })
        )
        // The broker's default is 1: a topic created without the setting reads 1.
        assert.strictEqual(yield* topicConfig(topic, "min.insync.replicas"), "2")
      }),
    60_000
  )

  it.effect(
    "three concurrent 1,000-reading appends for one sensor all land, split under a small max.message.bytes",
    () =>
      Effect.gen(function* () {
        const topic = `${run}.small`
        const maxMessageBytes = 65_536
        const admin = yield* probeAdmin
        yield* Effect.promise(() =>
          admin.createTopics({
            waitForLeaders: true,
            topics: [
              {
                topic,
                numPartitions: 4,
                replicationFactor: 1,
                configEntries: [{ name: "max.message.bytes", value: String(maxMessageBytes) }]
              }
            ]
          })
        )
        const sensor = `${run}-sensor`
        const partition = partitionForKey(sensor, 4)
        const posts = [0, 1, 2].map((post) =>
          Array.from({ length: 1_000 }, (_, i) => readingEvent(sensor, post * 1_000 + i))
        )
        // 3,000 events of about 500 bytes: one request for all of them would be refused (MESSAGE_TOO_LARGE).
        assert.isAbove(
          posts.flat().reduce((sum, r) => sum + r.value.byteLength, 0),
          10 * maxMessageBytes
        )
        const { positions, ends } = yield* Effect.gen(function* () {
          const log = yield* EventLog
          const positions = yield* Effect.forEach(posts, (post) => log.append(topic, post), {
            concurrency: "unbounded"
          })
          return { positions, ends: yield* log.endOffsets(topic) }
        }).pipe(Effect.provide(eventLogOn([{ name: topic, partitions: 4 }])))

        for (const landed of positions) {
          assert.strictEqual(landed.length, 1_000)
          assert.isTrue(landed.every((p) => p.partition === partition))
          // One sensor's readings stay in order: each post's events are consecutive in its partition.
          assert.isTrue(landed.every((p, i) => p.offset === landed[0]!.offset + i))
        }
        assert.strictEqual(new Set(positions.flat().map((p) => p.offset)).size, 3_000)
        assert.strictEqual(ends.get(partition), 3_000)
      }).pipe(Effect.scoped),
    120_000
  )

  it.effect(
    "a producer answered UNKNOWN_PRODUCER_ID is replaced: not ready until the new one connects, then appends land",
    () =>
      Effect.gen(function* () {
        const topic = `${run}.recreate`
        let created = 0
        let open: () => void = () => undefined
        const gate = new Promise<void>((resolve) => {
          open = resolve
        })
        // The first producer's first send is answered as a broker that lost the producer's state answers.
        const wrapProducer = (producer: KafkaEventLog.ProducerHandle): KafkaEventLog.ProducerHandle => {
          const index = created++
          let sends = 0
          return {
            connect: () => (index === 0 ? producer.connect() : gate.then(() => producer.connect())),
            disconnect: () => producer.disconnect(),
            send: (record) => {
              if (index === 0 && sends++ === 0) {
                const lost = new kafkajs.KafkaJSProtocolError({
                  type: "UNKNOWN_PRODUCER_ID",
                  code: 59,
                  retriable: false,
                  message: "unknown producer id"
                } as never)
                return Promise.reject(lost)
              }
              return producer.send(record)
            }
          }
        }
        yield* Effect.gen(function* () {
          const log = yield* EventLog
          yield* log.ping
          const failed = yield* log.append(topic, [readingEvent("s", 0)]).pipe(Effect.flip)
          assert.strictEqual(failed.appendOutcome, "unknown")
          const notReady = yield* log.ping.pipe(Effect.flip)
          assert.match(notReady.message, /being replaced/)
          open()
          const landed = yield* log.append(topic, [readingEvent("s", 1)])
          assert.strictEqual(landed.length, 1)
          yield* log.ping
          assert.strictEqual(created, 2)
        }).pipe(Effect.provide(eventLogOn([{ name: topic, partitions: 2 }], {}, { wrapProducer })))
      }),
    60_000
  )
})
