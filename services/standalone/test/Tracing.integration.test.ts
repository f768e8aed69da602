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
    "an urgent low's POST is one trace from the receiver's HTTP span across Kafka into the processor and the notifier, through their store writes and the notification into the deliverer, to its attempt at the webhook",
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
        // Spans arrive from four processes, each on its own schedule: wait for the last of the chain, the
        // deliverer's attempt at the webhook, and every consumer's span before it.
        const events = `${prefix}glucose.events`
        const alerts = `${prefix}glucose.alerts`
        const expected: ReadonlyArray<readonly [string, string]> = [
          [service.processor, `${events} process`],
          [service.processor, `${events} batch`],
          [service.processor, "readingstore.upsert"],
          [service.notifier, `${events} process`],
          [service.notifier, `${events} batch`],
          [service.notifier, "alertstore.save"],
          [service.notifier, "eventlog.append"],
          [service.deliverer, `${alerts} process`],
          [service.deliverer, `${alerts} batch`],
          [service.deliverer, "deliveryoutbox.enqueue"],
          [service.deliverer, "deliverer.attempt"],
          [service.deliverer, "webhooksender.send"]
        ]
        const trace = yield* eventually(
          zipkin.trace(traceId),
          (spans) => expected.every(([service, name]) => named(spans, service, name).length === 1),
          { what: `the consumers' and the delivery's spans in trace ${traceId}` }
        )
        const summary = trace.map((span) => `${serviceOf(span)}: ${span.name}`).join(", ")
        const only = (service: string, name: string) => {
          const spans = named(trace, service, name)
          assert.strictEqual(spans.length, 1, `one ${service}: ${name} in ${summary}`)
          return spans[0]!
        }

        const [root, ...notRoots] = trace.filter((span) => span.parentId === undefined)
        assert.strictEqual(notRoots.length, 0, `one root: ${summary}`)
        assert.strictEqual(serviceOf(root!), service.receiver)
        assert.strictEqual(root!.kind, "SERVER")
        assert.strictEqual(root!.name, "post")
        assert.strictEqual(root!.tags?.["http.request.method"] ?? root!.tags?.["http.method"], "POST")

        const accept = only(service.receiver, "ingestion.accept")
        assert.include(ancestorsOf(trace, accept), `${service.receiver}: post`)
        const append = only(service.receiver, "eventlog.append")
        assert.include(ancestorsOf(trace, append), `${service.receiver}: ingestion.accept`)

        // Across the broker: each consumer's span for the record continues the trace (the traceparent header).
        for (const consumer of [service.processor, service.notifier]) {
          const record = only(consumer, `${events} process`)
          assert.strictEqual(record.kind, "CONSUMER")
          assert.strictEqual(record.tags?.["messaging.consumer.group.name"], consumer)
          assert.include(ancestorsOf(trace, record), `${service.receiver}: ingestion.accept`, summary)
        }

        // A batch whose records are all of one trace (here, the one reading) is that trace's: its span is the
        // record's child, so the store writes made under it are in the POST's trace too.
        assert.deepStrictEqual(ancestorsOf(trace, only(service.processor, "readingstore.upsert")).slice(0, 2), [
          `${service.processor}: ${events} batch`,
          `${service.processor}: ${events} process`
        ])
        for (const write of ["alertstore.save", "eventlog.append"]) {
          assert.deepStrictEqual(ancestorsOf(trace, only(service.notifier, write)).slice(0, 2), [
            `${service.notifier}: ${events} batch`,
            `${service.notifier}: ${events} process`
          ])
        }

        // The notification carries the trace of the reading that caused it: the deliverer's span for it is the
        // child of the notifier's span for the reading, and the outbox write is made in its batch.
        const handedOver = only(service.deliverer, `${alerts} process`)
        assert.strictEqual(handedOver.kind, "CONSUMER")
        assert.strictEqual(ancestorsOf(trace, handedOver)[0], `${service.notifier}: ${events} process`)
        assert.deepStrictEqual(ancestorsOf(trace, only(service.deliverer, "deliveryoutbox.enqueue")).slice(0, 2), [
          `${service.deliverer}: ${alerts} batch`,
          `${service.deliverer}: ${alerts} process`
        ])

        // The delivery: the attempt claimed from the outbox continues the trace the outbox row kept.
        const attempt = only(service.deliverer, "deliverer.attempt")
        assert.strictEqual(attempt.tags?.["dexmon.delivery_id"], delivered!.delivery)
        assert.deepStrictEqual(ancestorsOf(trace, attempt), [
          `${service.deliverer}: ${alerts} process`,
          `${service.notifier}: ${events} process`,
          ...ancestorsOf(trace, only(service.notifier, `${events} process`))
        ])
        assert.include(
          ancestorsOf(trace, only(service.deliverer, "webhooksender.send")),
          `${service.deliverer}: deliverer.attempt`
        )

        // As a person sees it in Zipkin's UI; the README shows it when asked to (DEXMON_UPDATE_README_SCREENSHOT=1).
        const opened = yield* openUrlInChromium("zipkin-trace", zipkin.uiUrl(traceId), {
          width: 1400,
          // Tall enough for every row of the trace: the UI renders only the rows in view.
          height: 1600,
          scriptMillis: 10_000
        })
        assert.include(opened.dom, traceId)
        // Its rows, one per span, drawn as "<service>: <span name>".
        for (const row of [
          `${service.receiver}: post`,
          `${service.receiver}: eventlog.append`,
          `${service.processor}: ${events} process`,
          `${service.notifier}: ${events} process`,
          `${service.notifier}: alertstore.save`,
          `${service.deliverer}: ${alerts} process`,
          `${service.deliverer}: deliverer.attempt`,
          `${service.deliverer}: webhooksender.send`
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
