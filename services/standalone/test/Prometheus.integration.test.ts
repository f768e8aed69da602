// Issue 21: the harness's real Prometheus (`pnpm infra up observability`) scrapes DexMon's services, loads the
// repository's alert rules, and sends what fires to a real Alertmanager.
import { spawnSync } from "node:child_process"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { DexMonClient } from "@dexmon/sdk"
import {
  eventually,
  freshDatabase,
  makeAlertmanagerWebhook,
  makeDexMonProcess,
  makeServiceProcess,
  makeTcpProxy,
  makeWebhookReceiver,
  makeZipkinReader,
  prometheusExemplars,
  prometheusQuery,
  prometheusValue,
  requiredServer,
  scrapedByPrometheus
} from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect } from "effect"
import { Kafka, logLevel } from "kafkajs"

const USER = "prometheus-user"
const MINUTE = 60_000
/** Above the lag rule's threshold (5,000 records) with room: the readings posted while the processor is stuck. */
const STUCK_READINGS = 6_500
const SENSORS = 40

/**
 * prom-client's default Node.js gauges whose names end in `_total`, which `promtool check metrics` flags. They are
 * the names every Node.js dashboard uses, and DexMon does not name them: kept, and only they are let through.
 */
const PROM_CLIENT_DEFAULTS = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total"
]

/** What `promtool check metrics` (the harness's, on PATH under `pnpm test`) says of an exposition: one problem a line. */
const promtoolProblems = (exposition: string): ReadonlyArray<string> => {
  const checked = spawnSync("promtool", ["check", "metrics"], { input: exposition, encoding: "utf8" })
  if (checked.error !== undefined) {
    throw new Error(
      `promtool did not run (${checked.error.message}): run the tests with \`pnpm test\`, which puts it on PATH`
    )
  }
  return `${checked.stdout}${checked.stderr}`
    .split("\n")
    .filter((line) => line.trim() !== "")
    .filter((line) => !PROM_CLIENT_DEFAULTS.some((name) => line.startsWith(`${name} `)))
}

/** Every `expr` of the Grafana dashboard with the title of its panel and the panel's unit. */
const dashboardExpressions = (): ReadonlyArray<{ title: string; unit: string | undefined; expr: string }> => {
  interface Panel {
    readonly title?: string
    readonly type?: string
    readonly panels?: ReadonlyArray<Panel>
    readonly targets?: ReadonlyArray<{ readonly expr?: string }>
    readonly fieldConfig?: { readonly defaults?: { readonly unit?: string } }
  }
  const dashboard = JSON.parse(
    readFileSync(join(import.meta.dirname, "../../../deploy/grafana/dashboards/dexmon.json"), "utf8")
  ) as { panels: ReadonlyArray<Panel> }
  const panels = (list: ReadonlyArray<Panel>): ReadonlyArray<Panel> =>
    list.flatMap((panel) => (panel.type === "row" ? panels(panel.panels ?? []) : [panel]))
  return panels(dashboard.panels).flatMap((panel) =>
    (panel.targets ?? []).flatMap((target) =>
      target.expr === undefined
        ? []
        : [{ title: panel.title ?? "(untitled)", unit: panel.fieldConfig?.defaults?.unit, expr: target.expr }]
    )
  )
}

/**
 * Grafana's variables as Grafana would fill them for this Prometheus: `$__rate_interval` is at least four
 * scrape intervals (here 1 s); five minutes spans the whole test, so a rate sees the load however long ago it ran.
 */
const withGrafanaVariables = (expr: string): string =>
  expr.replaceAll("$__rate_interval", "5m").replaceAll("$__interval", "1m").replaceAll("$__range", "5m")

describe("Prometheus scraping DexMon", () => {
  it.live(
    "scrapes `pnpm start` every second and sees what it did",
    () =>
      Effect.gen(function* () {
        const dexmon = yield* makeDexMonProcess
        yield* dexmon.start
        const job = `standalone-${Date.now().toString(36)}`
        yield* scrapedByPrometheus(job, [new URL(dexmon.baseUrl).host])
        const up = yield* eventually(prometheusValue(`up{job="${job}"}`), (value) => value === 1, {
          what: `Prometheus scraping ${job}`,
          every: "500 millis",
          times: 60
        })
        assert.strictEqual(up, 1)

        const now = yield* Clock.currentTimeMillis
        yield* Effect.gen(function* () {
          const client = yield* DexMonClient
          yield* client.ingestion.postSensor({
            payload: {
              readings: [{ sensor_id: `${job}-sensor` as never, timestamp: now - 60_000, glucose_value: 120 }]
            }
          })
        }).pipe(Effect.provide(DexMonClient.layer({ baseUrl: dexmon.baseUrl, userId: "prometheus-user" })))
        const posted = yield* eventually(
          prometheusValue(`sum(http_requests_total{job="${job}", route="/api/v1/glucose/sensor", status="202"})`),
          (value) => value === 1,
          { what: "the POST counted in Prometheus", every: "500 millis", times: 60 }
        )
        assert.strictEqual(posted, 1)
        // Several scrapes, each one seen by the process: its own count of GET /metrics keeps growing.
        const scrapes = yield* eventually(
          prometheusValue(`sum(http_requests_total{job="${job}", route="/metrics"})`),
          (value) => value !== undefined && value >= 3,
          { what: "three scrapes counted by the process", every: "500 millis", times: 60 }
        )
        assert.isAtLeast(scrapes!, 3)
        const series = yield* prometheusQuery(`{job="${job}"}`)
        assert.isAbove(series.length, 50)
      }),
    120_000
  )

  it.live(
    "scrapes every service of a production topology; a processor stuck on its database fires the lag alert into Alertmanager's webhook, which resolves when it recovers; every dashboard expression answers with data; latency exemplars lead to traces in Zipkin",
    () =>
      Effect.gen(function* () {
        const run = `prom${Date.now().toString(36)}`
        const zipkin = requiredServer("ZIPKIN_URL")
        const startedAt = yield* Clock.currentTimeMillis
        const database = yield* freshDatabase({ name: `dexmon_${run}` })
        const databaseUrl = new URL(database.url)
        // The processor reaches its database through a proxy the test can cut: it stays up and keeps reporting
        // its lag while it cannot write (the processor waits a database out rather than dead-letter readings).
        const proxy = yield* makeTcpProxy({ host: databaseUrl.hostname, port: Number(databaseUrl.port || 5432) })
        const processorDatabase = new URL(database.url)
        processorDatabase.hostname = "127.0.0.1"
        processorDatabase.port = String(proxy.port)
        const processorGroup = `${run}-processor`
        const env: Record<string, string | undefined> = {
          PATH: process.env.PATH,
          SECURITY_DISABLED: "true",
          KAFKA_BROKERS: requiredServer("KAFKA_BROKERS"),
          DATABASE_URL: database.url,
          DEXMON_TOPIC_PREFIX: `${run}.`,
          DEXMON_PROCESSOR_GROUP: processorGroup,
          DEXMON_NOTIFIER_GROUP: `${run}-notifier`,
          DEXMON_DELIVERER_GROUP: `${run}-deliverer`
        }
        const alertmanager = yield* makeAlertmanagerWebhook
        const endpoint = yield* makeWebhookReceiver(() => ({ status: 204 }))
        // Spans go to the harness's Zipkin, so the latency histograms carry trace ids as exemplars.
        const traced = (service: string, settings: Record<string, string | undefined> = env) => ({
          ...settings,
          OTEL_TRACES_EXPORTER: "zipkin",
          OTEL_EXPORTER_ZIPKIN_ENDPOINT: `${zipkin}/api/v2/spans`,
          OTEL_SERVICE_NAME: `${run}-${service}`,
          OTEL_BSP_SCHEDULE_DELAY: "200"
        })
        const services = {
          receiver: yield* makeServiceProcess("receiver", traced("receiver")),
          processor: yield* makeServiceProcess(
            "processor",
            traced("processor", { ...env, DATABASE_URL: processorDatabase.href })
          ),
          notifier: yield* makeServiceProcess("notifier", traced("notifier")),
          deliverer: yield* makeServiceProcess("deliverer", traced("deliverer")),
          gateway: yield* makeServiceProcess("gateway", traced("gateway"))
        }
        yield* Effect.all(
          Object.values(services).map((service) => service.start),
          { concurrency: "unbounded" }
        )
        // The job the alert rules and the dashboard select, told apart from other tests' targets by `run`.
        yield* scrapedByPrometheus(
          run,
          Object.values(services).map((service) => new URL(service.baseUrl).host),
          { job: "dexmon", run }
        )
        const upTargets = yield* eventually(
          prometheusQuery(`up{job="dexmon", run="${run}"} == 1`),
          (series) => series.length === 5,
          { what: "all five services scraped", every: "500 millis", times: 120 }
        )
        assert.deepStrictEqual(
          upTargets.map((series) => series.metric.instance).sort(),
          Object.values(services)
            .map((service) => new URL(service.baseUrl).host)
            .sort()
        )

        const client = (baseUrl: string) => DexMonClient.layer({ baseUrl, userId: USER })
        const now = yield* Clock.currentTimeMillis
        const sensor = (n: number) => `${run}-s${n % SENSORS}` as never
        // A webhook for the user, and readings on every sensor (so the processor commits every partition and
        // reports its lag for each), one of them an urgent low that is delivered.
        yield* Effect.gen(function* () {
          const app = yield* DexMonClient
          const created = yield* app.webhooks.register({ payload: { url: endpoint.url } })
          endpoint.useSecret(created.secret)
        }).pipe(Effect.provide(client(services.gateway.baseUrl)))
        yield* Effect.gen(function* () {
          const app = yield* DexMonClient
          yield* app.ingestion.postSensor({
            payload: {
              readings: Array.from({ length: SENSORS }, (_, n) => ({
                sensor_id: sensor(n),
                timestamp: now - 10 * MINUTE,
                glucose_value: n === 0 ? 50 : 120
              }))
            }
          })
        }).pipe(Effect.provide(client(services.receiver.baseUrl)))
        // A record no consumer can decode: the dead-letter panels have something to show.
        const kafka = new Kafka({
          clientId: run,
          brokers: [requiredServer("KAFKA_BROKERS")],
          logLevel: logLevel.NOTHING
        })
        const producer = kafka.producer()
        yield* Effect.promise(() => producer.connect())
        yield* Effect.promise(() =>
          producer.send({ topic: `${run}.glucose.events`, messages: [{ key: "poison", value: "not json" }] })
        )
        yield* Effect.promise(() => producer.disconnect())
        yield* eventually(
          Effect.sync(() => endpoint.received().length),
          (n) => n >= 1,
          { what: "the urgent low delivered to the webhook", every: "200 millis", times: 300 }
        )
        // A first gateway query: its latency series is born with it, so the panels see a rate only from the
        // queries at the end.
        const queryGateway = Effect.gen(function* () {
          const app = yield* DexMonClient
          yield* app.readings.list({ query: { from: now - 60 * MINUTE, to: now } })
          yield* app.alerts.list({ query: { from: now - 60 * MINUTE, to: now } })
        }).pipe(Effect.provide(client(services.gateway.baseUrl)))
        yield* queryGateway
        const lag = `sum by (group) (max by (group, topic, partition) (dexmon_consumer_lag{group="${processorGroup}"}))`
        yield* eventually(prometheusValue(lag), (value) => value === 0, {
          what: "the processor caught up, as Prometheus sees it",
          every: "500 millis",
          times: 120
        })

        /** The processor group's lag alerts Alertmanager notified with `status`. */
        const lagAlerts = (status: "firing" | "resolved") =>
          Effect.sync(() =>
            alertmanager
              .alerts()
              .filter(
                (alert) =>
                  alert.labels.alertname === "DexMonConsumerLagHigh" &&
                  alert.labels.group === processorGroup &&
                  alert.status === status
              )
          )

        // The processor's database is cut off; readings keep coming.
        yield* proxy.blackhole
        yield* Effect.gen(function* () {
          const app = yield* DexMonClient
          for (let batch = 0; batch < STUCK_READINGS / 100; batch++) {
            yield* app.ingestion.postSensor({
              payload: {
                readings: Array.from({ length: 100 }, (_, i) => {
                  const n = batch * 100 + i
                  return {
                    sensor_id: sensor(n),
                    timestamp: now - 9 * MINUTE + Math.floor(n / SENSORS) * 1_000,
                    // One more urgent low (sensor 1): the notifier is not stuck, and a second delivery gives the
                    // delivery panels a rate (a series born at its first count shows no increase until the next).
                    glucose_value: n === 1 ? 50 : 100 + (n % 50)
                  }
                })
              }
            })
          }
        }).pipe(Effect.provide(client(services.receiver.baseUrl)))
        const firing = yield* eventually(lagAlerts("firing"), (alerts) => alerts.length > 0, {
          what: "DexMonConsumerLagHigh notified to Alertmanager's webhook",
          every: "500 millis",
          times: 240
        })
        assert.strictEqual(firing[0]!.labels.severity, "warning")
        assert.match(
          firing[0]!.annotations.summary ?? "",
          new RegExp(`Consumer group ${processorGroup} is \\d+ records behind`)
        )
        const lagWhenFiring = yield* prometheusValue(lag)
        assert.isAbove(lagWhenFiring!, 5_000)

        // Its database back, the processor catches up and the alert resolves.
        yield* proxy.heal("resume")
        const resolved = yield* eventually(lagAlerts("resolved"), (alerts) => alerts.length > 0, {
          what: "DexMonConsumerLagHigh resolved at Alertmanager's webhook",
          every: "500 millis",
          times: 360
        })
        assert.isAbove(Date.parse(resolved[0]!.endsAt), Date.parse(firing[0]!.startsAt))
        assert.strictEqual(yield* prometheusValue(lag), 0)

        // Gateway queries, then every panel of the dashboard.
        yield* queryGateway
        // The archiver pushes its run's figures to the Pushgateway, which Prometheus scrapes.
        const archiver = yield* makeServiceProcess("archiver", {
          ...env,
          S3_BUCKET: undefined,
          DEXMON_PUSHGATEWAY_URL: requiredServer("PUSHGATEWAY_URL")
        })
        const archived = yield* archiver.runToExit()
        assert.strictEqual(archived.code, 0, archived.output.slice(-3000))
        for (const { title, unit, expr } of dashboardExpressions()) {
          assert.isDefined(unit, `panel "${title}" names a unit`)
          const query = withGrafanaVariables(expr)
          const answer = yield* eventually(
            prometheusQuery(query),
            (series) => series.some((one) => Number.isFinite(one.value)),
            { what: `panel "${title}": ${query} answers with data`, every: "500 millis", times: 60 }
          )
          assert.isAbove(answer.length, 0)
        }

        // Exemplars: Prometheus scraped OpenMetrics, and a latency bucket's exemplar names a trace that Zipkin
        // holds. The end-to-end latency's exemplar is the trace of the POST that appended the record.
        for (const metric of ["http_request_duration_seconds_bucket", "dexmon_end_to_end_seconds_bucket"]) {
          const exemplars = yield* prometheusExemplars(`${metric}{job="dexmon", run="${run}"}`, startedAt)
          const traceIds = exemplars.flatMap((exemplar) => (exemplar.trace_id === undefined ? [] : [exemplar.trace_id]))
          assert.isAbove(traceIds.length, 0, `${metric} has exemplars with a trace id`)
          const spans = yield* eventually(makeZipkinReader(zipkin).trace(traceIds[0]!), (trace) => trace.length > 0, {
            what: `the trace of ${metric}'s exemplar in Zipkin`,
            every: "500 millis",
            times: 60
          })
          assert.isTrue(spans.every((span) => span.traceId === traceIds[0]))
        }

        // Prometheus' own linter on what each service exposes after the load (a labelled series shows only once
        // counted): names, suffixes, help texts.
        for (const [name, service] of Object.entries(services)) {
          const exposition = yield* Effect.promise(() => fetch(`${service.baseUrl}/metrics`).then((r) => r.text()))
          assert.deepStrictEqual(promtoolProblems(exposition), [], `promtool check metrics on the ${name}`)
        }
      }),
    300_000
  )
})
