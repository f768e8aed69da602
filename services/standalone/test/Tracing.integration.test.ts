import { copyFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { SensorId } from "@dexmon/domain"
import { DexMonClient } from "@dexmon/sdk"
import {
  eventually,
  freshDatabase,
  makeServiceProcess,
  makeWebhookReceiver,
  makeZipkinReader,
  openUrlInChromium,
  requiredServer,
  type ZipkinSpan
} from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect } from "effect"
import { HttpClient } from "effect/http"

const zipkinUrl = requiredServer("ZIPKIN_URL")
const USER = "trace-user"

const serviceOf = (span: ZipkinSpan) => span.localEndpoint?.serviceName
const named = (spans: ReadonlyArray<ZipkinSpan>, service: string, name: string) =>
  spans.filter((span) => serviceOf(span) === service && span.name === name)

/** The names of a span's ancestors in its trace, nearest first. */
const ancestorsOf = (spans: ReadonlyArray<ZipkinSpan>, span: ZipkinSpan): ReadonlyArray<string> => {
  const byId = new Map(spans.map((s) => [s.id, s]))
  const names: Array<string> = []
  for (let at = byId.get(span.parentId ?? ""); at !== undefined; at = byId.get(at.parentId ?? "")) {
    names.push(`${serviceOf(at)}: ${at.name}`)
  }
  return names
}

describe(`traces in Zipkin at ${zipkinUrl}`, () => {
  it.live(
    "an urgent low's POST is one trace from the receiver's HTTP span across Kafka into the processor and the notifier; the store writes, the notification and the delivery are traces of their own",
    () =>
      Effect.gen(function* () {
        // Zipkin lower-cases service and span names; a run of its own names the services apart from other runs'.
        const run = `trace${Date.now().toString(36)}`
        const database = yield* freshDatabase({ name: `dexmon_${run}` })
        const prefix = `${run}.`
        const common = {
          PATH: process.env.PATH,
          SECURITY_DISABLED: "true",
          KAFKA_BROKERS: requiredServer("KAFKA_BROKERS"),
          DATABASE_URL: database.url,
          DEXMON_TOPIC_PREFIX: prefix,
          DEXMON_PROCESSOR_GROUP: `${run}-processor`,
          DEXMON_NOTIFIER_GROUP: `${run}-notifier`,
          DEXMON_DELIVERER_GROUP: `${run}-deliverer`
        }
        const traced = (service: string) => ({
          ...common,
          OTEL_TRACES_EXPORTER: "zipkin",
          OTEL_EXPORTER_ZIPKIN_ENDPOINT: `${zipkinUrl}/api/v2/spans`,
          OTEL_SERVICE_NAME: `${run}-${service}`,
          OTEL_BSP_SCHEDULE_DELAY: "200"
        })
        const service = {
          receiver: `${run}-receiver`,
          processor: `${run}-processor`,
          notifier: `${run}-notifier`,
          deliverer: `${run}-deliverer`
        }
        const receiver = yield* makeServiceProcess("receiver", traced("receiver"))
        const processor = yield* makeServiceProcess("processor", traced("processor"))
        const notifier = yield* makeServiceProcess("notifier", traced("notifier"))
        const deliverer = yield* makeServiceProcess("deliverer", traced("deliverer"))
        // The webhook's registration is not what this test follows: the gateway exports nothing.
        const gateway = yield* makeServiceProcess("gateway", common)
        yield* Effect.all([receiver.start, processor.start, notifier.start, deliverer.start, gateway.start], {
          concurrency: "unbounded"
        })
        assert.include(
          receiver.output(),
          `exporting traces to Zipkin at ${zipkinUrl}/api/v2/spans as ${service.receiver}`
        )

        // The integrator's endpoint, registered for the user.
        const endpoint = yield* makeWebhookReceiver(() => ({ status: 200 }))
        yield* Effect.gen(function* () {
          const client = yield* DexMonClient
          const created = yield* client.webhooks.register({ payload: { url: endpoint.url } })
          endpoint.useSecret(created.secret)
        }).pipe(Effect.provide(DexMonClient.layer({ baseUrl: gateway.baseUrl, userId: USER })))

        // One urgent low, posted as a client that sends no trace context: the receiver's HTTP span starts the trace.
        const now = yield* Clock.currentTimeMillis
        yield* Effect.gen(function* () {
          const client = yield* DexMonClient
          yield* client.ingestion.postSensor({
            payload: { sensor_id: SensorId.make(`${run}-cgm`), timestamp: now - 60_000, glucose_value: 50 }
          })
        }).pipe(
          Effect.provideService(HttpClient.TracerPropagationEnabled, false),
          Effect.provide(DexMonClient.layer({ baseUrl: receiver.baseUrl, userId: USER }))
        )
        const [delivered] = yield* eventually(Effect.sync(endpoint.received), (received) => received.length === 1, {
          what: "the urgent low delivered to the webhook",
          times: 600
        })
        assert.isTrue(delivered!.verified)

        // The POST's trace, as Zipkin stored it: the receiver's HTTP server span is its root.
        const zipkin = makeZipkinReader(zipkinUrl)
        const [posted] = yield* eventually(
          zipkin.traces({ serviceName: service.receiver, spanName: "post" }),
          (traces) => traces.length === 1,
          { what: `one POST trace of ${service.receiver} in Zipkin` }
        )
        const traceId = posted![0]!.traceId
        // Spans arrive from four processes, each on its own schedule: wait for the consumers' spans.
        const trace = yield* eventually(
          zipkin.trace(traceId),
          (spans) =>
            named(spans, service.processor, `${prefix}glucose.events process`).length === 1 &&
            named(spans, service.notifier, `${prefix}glucose.events process`).length === 1,
          { what: `the processor's and the notifier's record spans in trace ${traceId}` }
        )
        const summary = trace.map((span) => `${serviceOf(span)}: ${span.name}`).join(", ")

        const [root, ...notRoots] = trace.filter((span) => span.parentId === undefined)
        assert.strictEqual(notRoots.length, 0, `one root: ${summary}`)
        assert.strictEqual(serviceOf(root!), service.receiver)
        assert.strictEqual(root!.kind, "SERVER")
        assert.strictEqual(root!.name, "post")
        assert.strictEqual(root!.tags?.["http.request.method"] ?? root!.tags?.["http.method"], "POST")

        const [accept] = named(trace, service.receiver, "ingestion.accept")
        assert.isDefined(accept, summary)
        assert.include(ancestorsOf(trace, accept!), `${service.receiver}: post`)
        const [append] = named(trace, service.receiver, "eventlog.append")
        assert.isDefined(append, summary)
        assert.include(ancestorsOf(trace, append!), `${service.receiver}: ingestion.accept`)

        // Across the broker: each consumer's span for the record continues the trace (the traceparent header).
        for (const consumer of [service.processor, service.notifier]) {
          const [record] = named(trace, consumer, `${prefix}glucose.events process`)
          assert.strictEqual(record!.kind, "CONSUMER")
          assert.strictEqual(record!.tags?.["messaging.consumer.group.name"], consumer)
          assert.include(ancestorsOf(trace, record!), `${service.receiver}: ingestion.accept`, summary)
        }

        // The store writes run in each consumer's batch span, which OpenTelemetry *links* to the record spans.
        // Zipkin's model has no links and the exporter drops them, so each batch is a trace of its own there.
        const [readingsBatch] = yield* eventually(
          zipkin.traces({ serviceName: service.processor, spanName: "ReadingStore.upsert" }),
          (traces) => traces.length === 1,
          { what: "the processor's batch trace with ReadingStore.upsert" }
        )
        const [upsert] = named(readingsBatch!, service.processor, "readingstore.upsert")
        assert.include(ancestorsOf(readingsBatch!, upsert!), `${service.processor}: ${prefix}glucose.events batch`)

        // The notifier's batch: the alert stored, the notification appended to glucose.alerts, and (through the
        // notification's traceparent) the deliverer's span for that record, in another process.
        const [alertsBatch] = yield* eventually(
          zipkin.traces({ serviceName: service.notifier, spanName: "AlertStore.save" }),
          (traces) =>
            traces.length === 1 && named(traces[0]!, service.deliverer, `${prefix}glucose.alerts process`).length === 1,
          { what: "the notifier's batch trace with AlertStore.save and the deliverer's record span" }
        )
        const batchSpan = `${service.notifier}: ${prefix}glucose.events batch`
        const [save] = named(alertsBatch!, service.notifier, "alertstore.save")
        assert.include(ancestorsOf(alertsBatch!, save!), batchSpan)
        const [notification] = named(alertsBatch!, service.notifier, "eventlog.append")
        assert.include(ancestorsOf(alertsBatch!, notification!), batchSpan)
        const [handedOver] = named(alertsBatch!, service.deliverer, `${prefix}glucose.alerts process`)
        assert.include(ancestorsOf(alertsBatch!, handedOver!), batchSpan)

        // The deliverer's batch of glucose.alerts: the delivery written to the outbox, for the endpoint it found.
        const [outboxBatch] = yield* eventually(
          zipkin.traces({ serviceName: service.deliverer, spanName: "DeliveryOutbox.enqueue" }),
          (traces) => traces.length === 1,
          { what: "the deliverer's batch trace with DeliveryOutbox.enqueue" }
        )
        const [enqueue] = named(outboxBatch!, service.deliverer, "deliveryoutbox.enqueue")
        assert.include(ancestorsOf(outboxBatch!, enqueue!), `${service.deliverer}: ${prefix}glucose.alerts batch`)

        // The delivery: an attempt claimed from the outbox starts a trace of its own, named by its delivery id.
        const [attempt] = yield* eventually(
          zipkin.traces({ serviceName: service.deliverer, spanName: "Deliverer.attempt" }),
          (traces) => traces.length === 1 && named(traces[0]!, service.deliverer, "webhooksender.send").length === 1,
          { what: "the deliverer's attempt trace with WebhookSender.send" }
        )
        const [attemptSpan] = named(attempt!, service.deliverer, "deliverer.attempt")
        assert.strictEqual(attemptSpan!.tags?.["dexmon.delivery_id"], delivered!.delivery)

        // As a person sees it in Zipkin's UI; the README shows it when asked to (DEXMON_UPDATE_README_SCREENSHOT=1).
        const opened = yield* openUrlInChromium("zipkin-trace", zipkin.uiUrl(traceId), {
          width: 1400,
          height: 900,
          scriptMillis: 10_000
        })
        assert.include(opened.dom, traceId)
        // Its rows, one per span, drawn as "<service>: <span name>".
        for (const row of [
          `${service.receiver}: post`,
          `${service.receiver}: eventlog.append`,
          `${service.processor}: ${prefix}glucose.events process`,
          `${service.notifier}: ${prefix}glucose.events process`
        ]) {
          assert.include(opened.dom, row)
        }
        assert.isAbove(opened.screenshotBytes, 40_000, "the trace drawn, not a blank page")
        if (process.env.DEXMON_UPDATE_README_SCREENSHOT === "1") {
          copyFileSync(opened.screenshot, fileURLToPath(new URL("../../../docs/trace.png", import.meta.url)))
        }
      }),
    240_000
  )
})
