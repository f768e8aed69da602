import { layerSpanProcessor } from "@dexmon/observability"
import { EmbeddedPostgres } from "@dexmon/ports"
import { DexMonClient } from "@dexmon/sdk"
import {
  eventually,
  freePort,
  has,
  layerEmbeddedPostgresTest,
  makeServiceProcess,
  parseExposition,
  requiredServer,
  tempDir,
  valueOf
} from "@dexmon/testing"
import { assert, layer } from "@effect/vitest"
import { type ReadableSpan, SimpleSpanProcessor, type SpanExporter } from "@opentelemetry/sdk-trace-base"
import { Clock, ConfigProvider, Effect, Layer, Redacted } from "effect"
import { Kafka, logLevel } from "kafkajs"
import { StandaloneLive } from "../src/Standalone.ts"

const brokers = requiredServer("KAFKA_BROKERS")
const HOUR = 3_600_000

/** Keeps every finished span (an InMemorySpanExporter forgets them when the provider shuts down). */
const makeCollector = () => {
  const spans: Array<ReadableSpan> = []
  const exporter: SpanExporter = {
    export: (batch: Array<ReadableSpan>, done: (result: { code: number }) => void) => {
      spans.push(...batch)
      done({ code: 0 })
    },
    shutdown: () => Promise.resolve()
  }
  return { spans, processor: new SimpleSpanProcessor(exporter) }
}

layer(layerEmbeddedPostgresTest, { timeout: 300_000, excludeTestServices: true })(
  `observability on Kafka at ${brokers}`,
  (it) => {
    it.effect("one trace runs from the POST through the real broker to the stored reading and the alert", () =>
      Effect.gen(function* () {
        const postgres = yield* EmbeddedPostgres
        const collector = makeCollector()
        const dataDir = yield* tempDir("trace")
        const port = yield* freePort
        const run = Date.now().toString(36)
        const env = {
          PORT: String(port),
          KAFKA_BROKERS: brokers,
          DEXMON_TOPIC_PREFIX: `trace-${run}.`,
          DEXMON_PROCESSOR_GROUP: `trace-processor-${run}`,
          DEXMON_NOTIFIER_GROUP: `trace-notifier-${run}`,
          DATABASE_URL: Redacted.value(postgres.url),
          DEXMON_DATA_DIR: dataDir,
          DEXMON_ARCHIVE_EVERY: "off",
          PATH: process.env.PATH ?? ""
        }
        // Receiver, processor and notifier in this process, so the in-memory exporter sees all their spans.
        yield* Layer.build(
          StandaloneLive.pipe(
            Layer.provide(layerSpanProcessor("dexmon-trace-test", collector.processor)),
            Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env })))
          )
        )
        const now = yield* Clock.currentTimeMillis
        yield* Effect.gen(function* () {
          const client = yield* DexMonClient
          yield* client.ingestion.postSensor({
            payload: { sensor_id: `trace-cgm-${run}` as never, timestamp: now - 60_000, glucose_value: 55 }
          })
          yield* eventually(
            client.alerts.list({ query: { from: now - HOUR, to: now + HOUR } }),
            (page) => page.items.length === 1
          )
        }).pipe(Effect.provide(DexMonClient.layer({ baseUrl: `http://127.0.0.1:${port}`, userId: "trace-user" })))

        // Spans end after the commit; wait for both consumers' record spans of the POST's trace.
        const accept = yield* eventually(
          Effect.sync(() => collector.spans.find((span) => span.name === "Ingestion.accept")),
          (span) => span !== undefined
        )
        const traceId = accept!.spanContext().traceId
        const inTrace = () => collector.spans.filter((span) => span.spanContext().traceId === traceId)
        const consumed = yield* eventually(
          Effect.sync(() => inTrace().filter((span) => span.name.endsWith("glucose.events process"))),
          (spans) => spans.length === 2
        )
        assert.deepStrictEqual(consumed.map((span) => span.attributes["messaging.consumer.group.name"]).sort(), [
          `trace-notifier-${run}`,
          `trace-processor-${run}`
        ])
        assert.isTrue(
          consumed.every((span) => span.status.code !== 2),
          "both consumers succeeded"
        )
        // The HTTP server span of the POST (kind 1 = SERVER; its parent is the SDK client's span, in the
        // test's own tracer) is an ancestor of the receiver's span.
        const server = inTrace().find((span) => span.name === "POST" && span.kind === 1)
        assert.isDefined(
          server,
          inTrace()
            .map((span) => span.name)
            .join(", ")
        )
        const byId = new Map(inTrace().map((span) => [span.spanContext().spanId, span]))
        const ancestors: Array<string> = []
        for (let at = byId.get(accept!.parentSpanContext?.spanId ?? ""); at !== undefined; ) {
          ancestors.push(at.name)
          at = byId.get(at.parentSpanContext?.spanId ?? "")
        }
        assert.include(ancestors, "POST")
        // The consumers' spans hang under the receiver's span through the traceparent header on the broker.
        const ids = new Set(inTrace().map((span) => span.spanContext().spanId))
        for (const span of consumed) assert.isTrue(ids.has(span.parentSpanContext!.spanId))
        // The store writes ran inside batch spans linked to the consumed records.
        const batches = collector.spans.filter((span) => span.name.endsWith("glucose.events batch"))
        assert.isTrue(
          batches.some((batch) => batch.links.some((link) => link.context.traceId === traceId)),
          "a batch span links to the POST's trace"
        )
        const upserts = collector.spans.filter((span) => span.name === "ReadingStore.upsert")
        assert.isTrue(
          upserts.some((span) => batches.some((b) => b.spanContext().spanId === span.parentSpanContext?.spanId))
        )
      })
    )

    it.effect("every service serves /metrics in the exposition format, with the figures of what it did", () =>
      Effect.gen(function* () {
        const postgres = yield* EmbeddedPostgres
        const run = Date.now().toString(36)
        const prefix = `metrics-${run}.`
        const common = {
          PATH: process.env.PATH,
          KAFKA_BROKERS: brokers,
          DEXMON_TOPIC_PREFIX: prefix,
          DATABASE_URL: Redacted.value(postgres.url),
          DEXMON_PROCESSOR_GROUP: `metrics-processor-${run}`,
          DEXMON_NOTIFIER_GROUP: `metrics-notifier-${run}`
        }
        const services = {
          receiver: yield* makeServiceProcess("receiver", common),
          processor: yield* makeServiceProcess("processor", common),
          notifier: yield* makeServiceProcess("notifier", common),
          gateway: yield* makeServiceProcess("gateway", common)
        }
        yield* Effect.all(
          Object.values(services).map((service) => service.start),
          { concurrency: "unbounded" }
        )
        const now = yield* Clock.currentTimeMillis
        // Live readings on five sensors, in time order per sensor; each sensor's episodes are what the counts
        // are made of: an urgent low alone (it supersedes LOW), one LOW episode of two low readings and one of
        // a single reading, a HIGH, and a sensor that never leaves the range. Fewer than three readings a
        // sensor, so no trend (URGENT_LOW_SOON) can be fitted.
        const series: ReadonlyArray<readonly [string, ReadonlyArray<number>]> = [
          ["urgent", [55]],
          ["low-twice", [65, 62]],
          ["low-once", [68]],
          ["high", [300]],
          ["in-range", [120, 130]]
        ]
        const readings = series.flatMap(([sensor, values]) =>
          values.map((glucose_value, i) => ({
            sensor_id: `metrics-${sensor}-${run}` as never,
            timestamp: now - (values.length - i) * 60_000,
            glucose_value
          }))
        )
        yield* Effect.gen(function* () {
          const receiver = yield* DexMonClient
          yield* receiver.ingestion.postSensor({ payload: { readings } })
        }).pipe(Effect.provide(DexMonClient.layer({ baseUrl: services.receiver.baseUrl, userId: "metrics-user" })))
        // A record no consumer can decode, straight onto the topic: it must reach both DLQs.
        const kafka = new Kafka({ clientId: "metrics-test", brokers: brokers.split(","), logLevel: logLevel.NOTHING })
        const producer = kafka.producer()
        yield* Effect.promise(() => producer.connect())
        yield* Effect.promise(() =>
          producer.send({ topic: `${prefix}glucose.events`, messages: [{ key: "poison", value: "not json" }] })
        )
        yield* Effect.promise(() => producer.disconnect())

        const scrape = (service: keyof typeof services) =>
          Effect.promise(() => fetch(`${services[service].baseUrl}/metrics`).then((r) => r.text())).pipe(
            Effect.map(parseExposition)
          )
        const { gatewayReads, episodes } = yield* Effect.gen(function* () {
          const gateway = yield* DexMonClient
          const range = { query: { from: now - HOUR, to: now + HOUR } }
          return {
            gatewayReads: yield* eventually(
              gateway.readings.list(range),
              (page) => page.items.length === readings.length
            ),
            episodes: yield* eventually(gateway.alerts.list(range), (page) => page.items.length === 4)
          }
        }).pipe(Effect.provide(DexMonClient.layer({ baseUrl: services.gateway.baseUrl, userId: "metrics-user" })))
        assert.strictEqual(gatewayReads.items.length, readings.length)
        assert.deepStrictEqual(
          episodes.items.map((alert) => `${alert.alert_type} ${alert.status} ${alert.sensor_id}`).sort(),
          [
            `HIGH ACTIVE metrics-high-${run}`,
            `LOW ACTIVE metrics-low-once-${run}`,
            `LOW ACTIVE metrics-low-twice-${run}`,
            `URGENT_LOW ACTIVE metrics-urgent-${run}`
          ]
        )

        const receiver = yield* scrape("receiver")
        assert.strictEqual(
          valueOf(receiver, "http_requests_total", { route: "/api/v1/glucose/sensor", status: "202", method: "POST" }),
          1
        )
        assert.strictEqual(
          valueOf(receiver, "http_request_duration_seconds_count", { route: "/api/v1/glucose/sensor" }),
          1
        )
        assert.strictEqual(
          valueOf(receiver, "dexmon_events_produced_total", { topic: `${prefix}glucose.events` }),
          readings.length
        )
        assert.isTrue(has(receiver, "nodejs_heap_size_used_bytes"), "Node runtime metrics")
        assert.isTrue(has(receiver, "process_cpu_seconds_total"))
        assert.isTrue(receiver.every((sample) => sample.labels.service === "receiver"))

        // The lag gauge is refreshed every 5 s: wait until it reports the partition caught up.
        const caughtUp = (group: string) => (samples: ReturnType<typeof parseExposition>) =>
          valueOf(samples, "dexmon_dlq_messages_total") === 1 &&
          has(samples, "dexmon_consumer_lag", { group }) &&
          valueOf(samples, "dexmon_consumer_lag", { group }) === 0
        const processor = yield* eventually(scrape("processor"), caughtUp(`metrics-processor-${run}`))
        const group = { group: `metrics-processor-${run}` }
        // Every posted reading and the poison record.
        const consumed = readings.length + 1
        assert.strictEqual(valueOf(processor, "dexmon_events_consumed_total", group), consumed)
        assert.strictEqual(valueOf(processor, "dexmon_batch_size_sum", group), consumed)
        assert.strictEqual(valueOf(processor, "dexmon_end_to_end_seconds_count", group), consumed)
        assert.isAbove(valueOf(processor, "dexmon_end_to_end_seconds_sum", group), 0)
        assert.isAtLeast(valueOf(processor, "dexmon_store_write_duration_seconds_count", { store: "readings" }), 1)
        assert.strictEqual(valueOf(processor, "dexmon_dlq_messages_total", { topic: `${prefix}glucose.events.dlq` }), 1)

        const notifier = yield* eventually(scrape("notifier"), caughtUp(`metrics-notifier-${run}`))
        // Episodes opened, not low or high readings: three low readings made two LOW episodes, and the 55
        // counts as URGENT_LOW only.
        assert.strictEqual(valueOf(notifier, "dexmon_alerts_total", { type: "URGENT_LOW" }), 1)
        assert.strictEqual(valueOf(notifier, "dexmon_alerts_total", { type: "LOW" }), 2)
        assert.strictEqual(valueOf(notifier, "dexmon_alerts_total", { type: "HIGH" }), 1)
        assert.strictEqual(valueOf(notifier, "dexmon_alerts_total"), 4, "no other kind was opened")
        assert.isAtLeast(valueOf(notifier, "dexmon_store_write_duration_seconds_count", { store: "alerts" }), 1)
        assert.strictEqual(
          valueOf(notifier, "dexmon_dlq_messages_total", { topic: `${prefix}glucose.events.alerts.dlq` }),
          1
        )

        const gateway = yield* scrape("gateway")
        assert.isAtLeast(valueOf(gateway, "http_requests_total", { route: "/api/v1/readings", status: "200" }), 1)
      })
    )
  }
)
