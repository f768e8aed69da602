import { Effect } from "effect"
import client from "prom-client"

/**
 * Every Prometheus metric DexMon exports, in one registry per process, served
 * at `/metrics` by every service. Dashboards and alert rules name these, so a
 * rename here is a breaking change for operators.
 */
export const registry = new client.Registry()
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
  registers
})
export const storeWriteDuration = new client.Histogram({
  name: "dexmon_store_write_duration_seconds",
  help: "Latency of a write to a store (readings: PostgreSQL/TimescaleDB; alerts: Cassandra or PostgreSQL; archive: S3)",
  labelNames: ["store"] as const,
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
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

/** The exposition text of every metric, and its content type. */
export const exposition = Effect.promise(() => registry.metrics()).pipe(
  Effect.map((text) => ({ text, contentType: registry.contentType }))
)

/** Records how long `effect` takes as a write to `store`, whether it succeeds or not. */
export const timeStoreWrite =
  (store: "readings" | "alerts" | "archive") =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.suspend(() => {
      const stop = storeWriteDuration.startTimer({ store })
      return effect.pipe(Effect.ensuring(Effect.sync(() => stop())))
    })

/**
 * Pushes every metric to a Prometheus Pushgateway under `job`: for a process
 * that runs once and exits (the archiver as a CronJob), which no scrape would
 * catch alive.
 */
export const pushTo = (url: string, job: string) =>
  Effect.tryPromise({
    try: () => new client.Pushgateway(url, {}, registry).pushAdd({ jobName: job }),
    catch: (cause) => new Error(`could not push metrics to ${url}: ${String(cause)}`)
  }).pipe(Effect.asVoid)
