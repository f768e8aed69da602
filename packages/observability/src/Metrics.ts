import { Effect, Option } from "effect"
import client from "prom-client"
import { TracesExported } from "./Tracing.ts"

/**
 * Every Prometheus metric DexMon exports, in one registry per process, served
 * at `/metrics` by every service. Dashboards and alert rules name these, so a
 * rename here is a breaking change for operators.
 *
 * The registry speaks OpenMetrics, the format that carries exemplars: a latency
 * observation keeps the trace id of the request or record it timed, so a
 * dashboard's slow bucket links to a trace of it. A scraper that does not ask
 * for OpenMetrics (curl, the Pushgateway) gets the classic text format.
 */
export const registry = new client.Registry()
// prom-client's types bind a registry's format at its creation, and every metric's `registers` to the default.
registry.setContentType(client.Registry.OPENMETRICS_CONTENT_TYPE as never)
client.collectDefaultMetrics({ register: registry })

const registers = [registry]

export const httpRequests = new client.Counter({
  name: "http_requests_total",
  help: "HTTP requests answered, by method, route and status",
  labelNames: ["method", "route", "status"] as const,
  registers
})
export const httpRequestDuration = new client.Histogram({
  name: "http_request_duration_seconds",
  help: "HTTP request latency, by method, route and status",
  labelNames: ["method", "route", "status"] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  enableExemplars: true,
  registers
})
export const eventsProduced = new client.Counter({
  name: "dexmon_events_produced_total",
  help: "Records appended to the event log, by topic",
  labelNames: ["topic"] as const,
  registers
})
export const eventsConsumed = new client.Counter({
  name: "dexmon_events_consumed_total",
  help: "Records a consumer group has handled (stored, skipped or dead-lettered) and committed, by topic and group",
  labelNames: ["topic", "group"] as const,
  registers
})
export const consumerLag = new client.Gauge({
  name: "dexmon_consumer_lag",
  help: "Records in a partition not yet committed by the group: end offset minus committed offset",
  labelNames: ["topic", "partition", "group"] as const,
  registers
})
export const deadLetters = new client.Counter({
  name: "dexmon_dlq_messages_total",
  help: "Records sent to a dead-letter topic, by that topic",
  labelNames: ["topic"] as const,
  registers
})
export const batchSize = new client.Histogram({
  name: "dexmon_batch_size",
  help: "Records per partition batch a consumer group handles",
  labelNames: ["group"] as const,
  buckets: [1, 5, 10, 25, 50, 100, 250, 500, 1000, 5000],
  registers
})
export const endToEnd = new client.Histogram({
  name: "dexmon_end_to_end_seconds",
  help: "From a record's append to the event log (the receiver's 202) until a consumer group committed it: for the processor the reading is stored, for the notifier its alert",
  labelNames: ["topic", "group"] as const,
  buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
  enableExemplars: true,
  registers
})
export const storeWriteDuration = new client.Histogram({
  name: "dexmon_store_write_duration_seconds",
  help: "Latency of a write to a store (readings: PostgreSQL/TimescaleDB; alerts: Cassandra or PostgreSQL; archive: S3)",
  labelNames: ["store"] as const,
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  enableExemplars: true,
  registers
})
export const alertsRaised = new client.Counter({
  name: "dexmon_alerts_total",
  help: "Alert episodes the notifier opened, by kind (BACKFILLED and recorded ones included); a batch decided again after a crash between its alert and state writes counts again",
  labelNames: ["type"] as const,
  registers
})
export const notificationsDecided = new client.Counter({
  name: "dexmon_notifications_total",
  help: "Notifications the notifier decided and appended to glucose.alerts, by alert kind and type (alert, repeat, all_clear), counted once the batch's states are written; a batch decided again after a crash appends (and counts) its decisions again, under the same keys",
  labelNames: ["alert_type", "type"] as const,
  registers
})
export const webhookDeliveries = new client.Counter({
  name: "dexmon_webhook_deliveries_total",
  help: "Webhook delivery attempts by outcome: DELIVERED (2xx), RETRY (to be tried again), FAILED (for good: refused, or the retry budget spent)",
  labelNames: ["outcome"] as const,
  registers
})
export const webhookLatency = new client.Histogram({
  name: "dexmon_webhook_delivery_duration_seconds",
  help: "Latency of a webhook delivery attempt, from the request until the endpoint's answer (or the timeout)",
  buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  enableExemplars: true,
  registers
})
export const archivedRows = new client.Counter({
  name: "dexmon_archived_rows_total",
  help: "Readings moved from the hot store into archive objects",
  registers
})
export const lateEvents = new client.Counter({
  name: "dexmon_late_events_total",
  help: "Late events (for keys of archived days, queued by the processor) the archiver folded into the archive, by the conflict rule's outcome: inserted (a new key), replaced (a new value), refreshed (the same value, a later event), kept (an older or a repeated event: nothing changed)",
  labelNames: ["outcome"] as const,
  registers
})
export const nightscoutEntriesIgnored = new client.Counter({
  name: "dexmon_nightscout_entries_ignored_total",
  help: "Nightscout entries answered but not kept as readings, by kind: calibration, device_error (an sgv below 39) or other_type",
  labelNames: ["kind"] as const,
  registers
})
export const lateEventsPending = new client.Gauge({
  name: "dexmon_late_events_pending",
  help: "Late events queued for archived days that the archiver's last run found to fold (the read path shows them over the archive meanwhile)",
  registers
})

/** Labels every series with the service that exports it. */
export const labelService = (service: string) => registry.setDefaultLabels({ service })

/** The classic text format's content type (what prom-client's default registry serves). */
const TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

/**
 * The exposition of every metric: OpenMetrics, exemplars included, when `accept` asks for it (as Prometheus
 * does), else the classic text format. Both come from the one registry: the text is the OpenMetrics rewritten
 * (`openMetricsToText`), not a second registry, because prom-client renames a counter in place the first time
 * an OpenMetrics registry prints it.
 */
export const exposition = (accept: string | undefined) =>
  Effect.promise(() => registry.metrics()).pipe(
    Effect.map((openMetrics) =>
      accept?.includes("application/openmetrics-text")
        ? { text: openMetrics, contentType: registry.contentType as string }
        : { text: openMetricsToText(openMetrics), contentType: TEXT_CONTENT_TYPE }
    )
  )

/** Where a sample line's labels end (after the closing brace, quotes and escapes inside respected), or 0. */
const endOfLabels = (line: string): number => {
  const open = line.indexOf("{")
  const space = line.indexOf(" ")
  if (open < 0 || (space >= 0 && space < open)) return 0
  let quoted = false
  for (let i = open + 1; i < line.length; i++) {
    const char = line[i]
    if (quoted && char === "\\") i++
    else if (char === '"') quoted = !quoted
    else if (!quoted && char === "}") return i + 1
  }
  return line.length
}

/**
 * prom-client's OpenMetrics as the classic text format: a counter's family is named with its `_total` (as its
 * samples are), exemplars and the `# EOF` line go, and families are apart by a blank line.
 */
export const openMetricsToText = (openMetrics: string): string => {
  const lines = openMetrics.split("\n")
  const counters = new Set(
    lines.flatMap((line) => {
      const [hash, keyword, family, type] = line.split(" ")
      return hash === "#" && keyword === "TYPE" && type === "counter" ? [family!] : []
    })
  )
  const text: Array<string> = []
  for (const line of lines) {
    if (line === "" || line === "# EOF") continue
    if (line.startsWith("# HELP ") || line.startsWith("# TYPE ")) {
      const [hash, keyword, family, ...rest] = line.split(" ")
      if (keyword === "HELP" && text.length > 0) text.push("")
      text.push([hash, keyword, counters.has(family!) ? `${family}_total` : family, ...rest].join(" "))
      continue
    }
    if (line.startsWith("#")) continue
    const labelsEnd = endOfLabels(line)
    const exemplar = line.indexOf(" # ", labelsEnd)
    text.push(exemplar < 0 ? line : line.slice(0, exemplar))
  }
  return `${text.join("\n")}\n`
}

/** Observes `value` in `histogram`, with `traceId` (when there is one) as its exemplar. */
export const observeTraced = <T extends string>(
  histogram: client.Histogram<T>,
  labels: client.LabelValues<T>,
  value: number,
  traceId: string | undefined
): void => {
  const exemplarLabels = traceId === undefined ? {} : { trace_id: traceId }
  histogram.observe({ labels, value, exemplarLabels: exemplarLabels as client.LabelValues<T> })
}

/**
 * Observes `value` in `histogram`, with the current span's trace id as its exemplar when spans are exported: a
 * trace id that no store keeps would lead nowhere.
 */
export const observe = Effect.fnUntraced(function* <T extends string>(
  histogram: client.Histogram<T>,
  labels: client.LabelValues<T>,
  value: number
) {
  const span = (yield* TracesExported) ? Option.getOrUndefined(yield* Effect.option(Effect.currentSpan)) : undefined
  observeTraced(histogram, labels, value, span?.traceId)
})

/** Records how long `effect` takes as a write to `store`, whether it succeeds or not. */
export const timeStoreWrite =
  (store: "readings" | "alerts" | "archive") =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.suspend(() => {
      const started = performance.now()
      return effect.pipe(
        Effect.ensuring(
          Effect.suspend(() => observe(storeWriteDuration, { store }, (performance.now() - started) / 1000))
        )
      )
    })

/**
 * Pushes every metric to a Prometheus Pushgateway under `job`: for a process
 * that runs once and exits (the archiver as a CronJob), which no scrape would
 * catch alive.
 */
export const pushTo = (url: string, job: string) =>
  Effect.gen(function* () {
    // The Pushgateway takes the text format, not OpenMetrics. POST, as prom-client's pushAdd: the job's other
    // metrics stay.
    const { text, contentType } = yield* exposition(undefined)
    const response = yield* Effect.tryPromise({
      try: () =>
        fetch(`${url.replace(/\/$/, "")}/metrics/job/${encodeURIComponent(job)}`, {
          method: "POST",
          headers: { "content-type": contentType },
          body: text
        }),
      catch: (cause) => new Error(`could not push metrics to ${url}: ${String(cause)}`)
    })
    if (!response.ok) {
      const body = yield* Effect.promise(() => response.text())
      return yield* Effect.fail(new Error(`could not push metrics to ${url}: ${response.status} ${body.slice(0, 500)}`))
    }
  })
