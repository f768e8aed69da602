import { AlertSettings } from "@dexmon/alerting"
import {
  Alert,
  AlertId,
  AlertNotification,
  AlertStatus,
  AlertType,
  GlucoseEvent,
  GlucoseValue,
  InvalidCursor,
  IsoTimestamp,
  Page,
  Reading,
  SensorId,
  WebhookId,
  WebhookView
} from "@dexmon/domain"
import { ReadingTrend, Units } from "@dexmon/statistics"
import { Schema } from "effect"
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import {
  Forbidden,
  NotFound,
  NotModified,
  PreconditionFailed,
  PreconditionRequired,
  ServiceUnavailable,
  ValidationError
} from "./Errors.ts"
import { Caller, RequiredScope } from "./Middleware.ts"

/** The most readings one batch may carry. */
export const MAX_BATCH_SIZE = 1000

/** One reading as the app posts it. The owner is the caller, never a field of the body. */
export const ReadingInput = Schema.Struct({
  sensor_id: SensorId,
  timestamp: IsoTimestamp,
  glucose_value: GlucoseValue
})
export type ReadingInput = typeof ReadingInput.Type

export const ReadingBatchInput = Schema.Struct({
  readings: Schema.Array(ReadingInput).check(
    Schema.isMinLength(1, { message: "must hold at least one reading" }),
    Schema.isMaxLength(MAX_BATCH_SIZE, { message: `must hold at most ${MAX_BATCH_SIZE} readings` })
  )
})

/** `202 Accepted`: the events are durable in the event log; processing follows asynchronously. */
export const IngestAccepted = Schema.Struct({
  accepted: Schema.Int,
  event_ids: Schema.Array(Schema.String)
}).pipe(HttpApiSchema.status(202))

export class IngestionGroup extends HttpApiGroup.make("ingestion")
  .add(
    HttpApiEndpoint.post("postSensor", "/sensor", {
      payload: Schema.Union([ReadingBatchInput, ReadingInput]),
      success: IngestAccepted,
      error: [ServiceUnavailable, Forbidden]
    }).annotateMerge(
      OpenApi.annotations({
        summary: 'Post one sensor reading, or a batch of up to 1,000 as {"readings": [...]}'
      })
    ),
    HttpApiEndpoint.post("postManual", "/manual", {
      payload: ReadingInput,
      success: IngestAccepted,
      error: [ServiceUnavailable, Forbidden]
    }).annotateMerge(OpenApi.annotations({ summary: "Post one manual (finger-stick) reading" }))
  )
  .middleware(Caller)
  .annotate(RequiredScope, "glucose:write")
  .prefix("/api/v1/glucose")
  .annotateMerge(OpenApi.annotations({ title: "Ingestion", description: "Readings from the app" })) {}

/** The range and page of a listing; `from` inclusive, `to` exclusive. */
const RangeQuery = {
  from: IsoTimestamp,
  to: IsoTimestamp,
  limit: Schema.optional(
    Schema.NumberFromString.check(
      Schema.isInt(),
      Schema.isBetween({ minimum: 1, maximum: 1000 }, { message: "must be an integer from 1 to 1000" })
    )
  ),
  cursor: Schema.optional(Schema.String)
}

/**
 * A reading as the readings endpoints serve it: its value in the units asked for, its rate of change from the
 * previous SENSOR reading of its sensor within 15 minutes, and the trend arrow that rate stands for. Its `etag`
 * is the representation's: it changes with the value, the units and the trend (a neighbour that arrives later
 * changes the trend).
 */
export const ReadingView = Schema.Struct({
  ...Reading.fields,
  glucose_value: Schema.Finite.annotate({ description: "the value in `units`, unrounded" }),
  units: Units,
  rate: Schema.NullOr(Schema.Finite).annotate({
    description:
      "change per minute in `units` from the previous SENSOR reading of the sensor within 15 minutes; null without one, and for a manual reading"
  }),
  trend: ReadingTrend.annotate({
    description:
      "DoubleUp >= +3, SingleUp >= +2, FortyFiveUp >= +1, Flat, FortyFiveDown <= -1, SingleDown <= -2, DoubleDown <= -3 mg/dL per minute; NotComputable when rate is null"
  }),
  etag: Schema.String.annotate({ description: "the representation's entity tag: it varies with units and trend" })
}).annotate({ identifier: "Reading" })
export type ReadingView = typeof ReadingView.Type

export const ReadingsPage = Page(ReadingView)

/** How `GET /readings/export` writes the readings: CSV with a header line, or one JSON reading per line. */
export const ExportFormat = Schema.Literals(["csv", "ndjson"])
export type ExportFormat = typeof ExportFormat.Type

/** The CSV export's columns, in order: its header line names them (Nightscout's CSV has none). */
export const CSV_EXPORT_COLUMNS = ["sensor_id", "timestamp", "glucose_value", "source", "trend", "rate"] as const
/**
 * How the alert's notifications fared at the user's webhooks, separate from
 * the episode's `status`: `SENT` once an endpoint took one of them with a 2xx,
 * `PENDING` while deliveries are queued or being retried, `FAILED` once every
 * delivery was given up, `NONE` where no endpoint of the user takes the kind
 * (or nothing was to be told: a late or silenced episode).
 */
export const DeliveryStatus = Schema.Literals(["PENDING", "SENT", "FAILED", "NONE"])
export type DeliveryStatus = typeof DeliveryStatus.Type

/** An alert episode as the API serves it: the stored episode and its delivery status. */
export const AlertView = Schema.Struct({ ...Alert.fields, delivery_status: DeliveryStatus }).annotate({
  identifier: "Alert"
})
export type AlertView = typeof AlertView.Type

export const AlertsPage = Page(AlertView)

/** The caller's open episodes: not a page, since there is at most one per sensor and kind. */
export const ActiveAlerts = Schema.Struct({ items: Schema.Array(AlertView) })

// Both endpoints honour `If-None-Match` (the etag a client cached): a match is answered 304 without a body.
const notModified = NotModified.pipe(HttpApiSchema.asNoContent({ decode: () => new NotModified() }))

export class ReadingsGroup extends HttpApiGroup.make("readings")
  .add(
    HttpApiEndpoint.get("list", "/readings", {
      query: { ...RangeQuery, sensor_id: Schema.optional(SensorId), units: Schema.optional(Units) },
      success: ReadingsPage,
      error: [InvalidCursor, ServiceUnavailable, notModified]
    }).annotateMerge(
      OpenApi.annotations({
        summary:
          "The caller's readings in [from, to), oldest first, in units (mg/dL unless mmol/L), each with its rate and trend; the page carries an ETag (304 when unchanged)"
      })
    ),
    HttpApiEndpoint.get("export", "/readings/export", {
      query: {
        from: IsoTimestamp,
        to: IsoTimestamp,
        format: ExportFormat,
        sensor_id: Schema.optional(SensorId),
        units: Schema.optional(Units)
      },
      success: HttpApiSchema.StreamUint8Array({ contentType: ["text/csv", "application/x-ndjson"] }),
      error: [ServiceUnavailable]
    }).annotateMerge(
      OpenApi.annotations({
        summary:
          "Every reading of the caller in [from, to), hot and archived, oldest first, streamed: CSV with a header (sensor_id,timestamp,glucose_value,source,trend,rate) or NDJSON of readings"
      })
    ),
    HttpApiEndpoint.get("get", "/readings/:sensor_id/:timestamp", {
      params: { sensor_id: SensorId, timestamp: IsoTimestamp },
      query: { units: Schema.optional(Units) },
      success: ReadingView,
      error: [NotFound, ServiceUnavailable, notModified]
    }).annotateMerge(OpenApi.annotations({ summary: "One reading, with its ETag (304 when unchanged)" }))
  )
  .middleware(Caller)
  .annotate(RequiredScope, "glucose:read")
  .annotateMerge(
    OpenApi.annotations({ title: "Readings", description: "Stored readings, as they are and as one reading" })
  )
  .prefix("/api/v1") {}

// `/alerts/active` is a static route, so the router matches it before the parametric `/alerts/:alert_id`
// whatever the order of declaration; it is declared first all the same, so the file reads as it routes.
export class AlertsGroup extends HttpApiGroup.make("alerts")
  .add(
    HttpApiEndpoint.get("list", "/alerts", {
      query: { ...RangeQuery, status: Schema.optional(AlertStatus), alert_type: Schema.optional(AlertType) },
      success: AlertsPage,
      error: [InvalidCursor, ServiceUnavailable]
    }).annotateMerge(
      OpenApi.annotations({
        summary:
          "The caller's alert episodes that started in [from, to), newest first, optionally of one status or kind"
      })
    ),
    HttpApiEndpoint.get("active", "/alerts/active", {
      success: ActiveAlerts,
      error: ServiceUnavailable
    }).annotateMerge(
      OpenApi.annotations({
        summary: "The caller's open alert episodes, at most one per sensor and kind, newest first"
      })
    ),
    HttpApiEndpoint.get("get", "/alerts/:alert_id", {
      params: { alert_id: AlertId },
      success: AlertView,
      error: [NotFound, ServiceUnavailable]
    }).annotateMerge(OpenApi.annotations({ summary: "One alert episode of the caller, by its id" }))
  )
  .middleware(Caller)
  .annotate(RequiredScope, "alerts:read")
  .annotateMerge(OpenApi.annotations({ title: "Alerts", description: "The caller's alert episodes, open and closed" }))
  .prefix("/api/v1") {}

/** `202 Accepted`: the action is durable on the sensor's event log, in order with its readings; the notifier applies it. */
export const ActionAccepted = Schema.Struct({ action_id: Schema.String }).pipe(HttpApiSchema.status(202))

/** The most and fewest minutes a snooze may last (`URGENT_LOW`: at most 30, checked by the server). */
export const SNOOZE_MINUTES = { minimum: 15, maximum: 240, urgentLowMaximum: 30 } as const

export const SnoozeInput = Schema.Struct({
  minutes: Schema.Int.check(
    Schema.isBetween(
      { minimum: SNOOZE_MINUTES.minimum, maximum: SNOOZE_MINUTES.maximum },
      { message: "must be an integer from 15 to 240 (at most 30 on an URGENT_LOW alert)" }
    )
  )
})

/**
 * What the person an alert protects does about it: acknowledge an episode,
 * snooze its kind, stop a sensor's session. Only the owner may act; another
 * user's alert or sensor is answered 404, so its existence is not revealed.
 */
export class AlertControlsGroup extends HttpApiGroup.make("alertControls")
  .add(
    HttpApiEndpoint.post("acknowledge", "/alerts/:alert_id/acknowledge", {
      params: { alert_id: AlertId },
      success: ActionAccepted,
      error: [NotFound, ServiceUnavailable]
    }).annotateMerge(
      OpenApi.annotations({
        summary:
          "Acknowledge an alert episode: its repeats stop (an URGENT_LOW still at or below 55 thirty minutes later notifies again); accepted in any state"
      })
    ),
    HttpApiEndpoint.post("snooze", "/alerts/:alert_id/snooze", {
      params: { alert_id: AlertId },
      payload: SnoozeInput,
      success: ActionAccepted,
      error: [NotFound, ValidationError, ServiceUnavailable]
    }).annotateMerge(
      OpenApi.annotations({
        summary:
          "Snooze the alert's kind on its sensor for 15 to 240 minutes, across episodes; a new URGENT_LOW is never snoozed (its repeats are, for at most 30 minutes)"
      })
    ),
    HttpApiEndpoint.post("stopSensor", "/sensors/:sensor_id/stop", {
      params: { sensor_id: SensorId },
      success: ActionAccepted,
      error: [NotFound, ServiceUnavailable]
    }).annotateMerge(
      OpenApi.annotations({
        summary:
          "End a sensor's session (a sensor change): its open episodes end silently and it raises no NO_DATA until it posts again"
      })
    )
  )
  .middleware(Caller)
  .annotate(RequiredScope, "alerts:write")
  .prefix("/api/v1")
  .annotateMerge(OpenApi.annotations({ title: "Alert controls", description: "Acknowledge, snooze, sensor stop" })) {}

/**
 * The caller's sensors. A sensor belongs to the user whose accepted batch first posted it; releasing it
 * lets the next user who posts it claim it (a device changing hands). The readings already stored stay
 * with the user who posted them. Another user's sensor is answered 404, so its existence is not revealed.
 */
export class SensorsGroup extends HttpApiGroup.make("sensors")
  .add(
    HttpApiEndpoint.delete("release", "/sensors/:sensor_id/owner", {
      params: { sensor_id: SensorId },
      success: HttpApiSchema.NoContent,
      error: [NotFound, ServiceUnavailable]
    }).annotateMerge(
      OpenApi.annotations({
        summary:
          "Give up ownership of one of the caller's sensors (204); the next batch that posts it claims it. Its stored readings stay the caller's"
      })
    )
  )
  .middleware(Caller)
  .annotate(RequiredScope, "glucose:write")
  .prefix("/api/v1")
  .annotateMerge(OpenApi.annotations({ title: "Sensors", description: "Ownership of the caller's sensors" })) {}

/** A settings document with its strong ETag, the version a `PUT` must name in `If-Match`. */
export const AlertSettingsWithEtag = HttpApiSchema.WithHeaders(AlertSettings, { etag: Schema.String })

export class AlertSettingsGroup extends HttpApiGroup.make("alertSettings")
  .add(
    HttpApiEndpoint.get("get", "/alert-settings", {
      success: AlertSettingsWithEtag,
      error: ServiceUnavailable
    }).annotateMerge(
      OpenApi.annotations({ summary: "The caller's alert settings (the defaults until changed), with their ETag" })
    ),
    HttpApiEndpoint.put("put", "/alert-settings", {
      payload: AlertSettings,
      headers: { "if-match": Schema.optional(Schema.String) },
      success: AlertSettingsWithEtag,
      error: [ValidationError, PreconditionFailed, PreconditionRequired, ServiceUnavailable]
    })
      // A misspelt or unknown key is refused, not dropped: a setting the user thinks they changed must not be lost.
      .annotate(HttpApi.PayloadParseOptions, { errors: "all", onExcessProperty: "error" })
      .annotate(RequiredScope, "alerts:write")
      .annotateMerge(
        OpenApi.annotations({
          summary:
            "Replace the caller's alert settings (omitted keys take the defaults); If-Match with the ETag read is required once settings exist (412 when stale, 428 when missing)"
        })
      )
  )
  .middleware(Caller)
  .annotate(RequiredScope, "alerts:read")
  .prefix("/api/v1")
  .annotateMerge(
    OpenApi.annotations({ title: "Alert settings", description: "Per-user thresholds, repeats and quiet hours" })
  ) {}

/** A webhook registration: where to POST notifications, and of which kinds (absent or null: every kind). */
export const WebhookInput = Schema.Struct({
  url: Schema.String.check(
    Schema.isMinLength(1, { message: "must be a URL" }),
    Schema.isMaxLength(2048, { message: "must be at most 2048 characters" })
  ),
  kinds: Schema.optional(
    Schema.NullOr(
      Schema.Array(AlertType).check(
        Schema.isMinLength(1, { message: "must name at least one kind, or be null for every kind" }),
        Schema.isUnique({ message: "must not name a kind twice" })
      )
    )
  )
})

/** `201`: the endpoint, with the secret that signs its deliveries, shown this once. */
export const WebhookCreated = Schema.Struct({ ...WebhookView.fields, secret: Schema.String }).pipe(
  HttpApiSchema.status(201)
)
export const WebhookSecret = Schema.Struct({ id: WebhookId, secret: Schema.String })
export const WebhookList = Schema.Struct({ items: Schema.Array(WebhookView) })
export const TestDeliveryAccepted = Schema.Struct({ delivery_id: Schema.String }).pipe(HttpApiSchema.status(202))

/** One attempt to deliver a notification to an endpoint, as the deliverer recorded it. */
export const DeliveryAttemptView = Schema.Struct({
  delivery_id: Schema.String,
  notification_id: Schema.String,
  attempt: Schema.Int,
  at: IsoTimestamp,
  status_code: Schema.NullOr(Schema.Int),
  latency_ms: Schema.Number,
  error: Schema.NullOr(Schema.String),
  outcome: Schema.Literals(["DELIVERED", "RETRY", "FAILED"])
})
export const DeliveryAttempts = Schema.Struct({ items: Schema.Array(DeliveryAttemptView) })

/**
 * The caller's webhook endpoints: notifications of the kinds it names are
 * POSTed to it, signed with its secret (see the README's Webhooks section).
 * Another user's endpoint is answered 404.
 */
export class WebhooksGroup extends HttpApiGroup.make("webhooks")
  .add(
    HttpApiEndpoint.post("register", "/webhooks", {
      payload: WebhookInput,
      success: WebhookCreated,
      error: [ValidationError, ServiceUnavailable]
    })
      .annotate(RequiredScope, "alerts:write")
      .annotateMerge(
        OpenApi.annotations({
          summary:
            "Register an endpoint (https in production, never a private address); it gets every notification decided after this answers. The secret is shown once."
        })
      ),
    HttpApiEndpoint.get("list", "/webhooks", {
      success: WebhookList,
      error: ServiceUnavailable
    }).annotateMerge(OpenApi.annotations({ summary: "The caller's endpoints, oldest first, without their secrets" })),
    HttpApiEndpoint.delete("remove", "/webhooks/:webhook_id", {
      params: { webhook_id: WebhookId },
      success: HttpApiSchema.NoContent,
      error: [NotFound, ServiceUnavailable]
    })
      .annotate(RequiredScope, "alerts:write")
      .annotateMerge(OpenApi.annotations({ summary: "Remove an endpoint; its pending deliveries are dropped" })),
    HttpApiEndpoint.post("rotateSecret", "/webhooks/:webhook_id/rotate-secret", {
      params: { webhook_id: WebhookId },
      success: WebhookSecret,
      error: [NotFound, ServiceUnavailable]
    })
      .annotate(RequiredScope, "alerts:write")
      .annotateMerge(
        OpenApi.annotations({
          summary: "A new secret for the endpoint, shown once; attempts from now on are signed with it"
        })
      ),
    HttpApiEndpoint.post("test", "/webhooks/:webhook_id/test", {
      params: { webhook_id: WebhookId },
      success: TestDeliveryAccepted,
      error: [NotFound, ServiceUnavailable]
    })
      .annotate(RequiredScope, "alerts:write")
      .annotateMerge(
        OpenApi.annotations({
          summary: "Queue a test notification to the endpoint, delivered and retried like any other"
        })
      ),
    HttpApiEndpoint.get("deliveries", "/webhooks/:webhook_id/deliveries", {
      params: { webhook_id: WebhookId },
      query: {
        limit: Schema.optional(
          Schema.NumberFromString.check(
            Schema.isInt(),
            Schema.isBetween({ minimum: 1, maximum: 1000 }, { message: "must be an integer from 1 to 1000" })
          )
        )
      },
      success: DeliveryAttempts,
      error: [NotFound, ServiceUnavailable]
    }).annotateMerge(
      OpenApi.annotations({
        summary: "The endpoint's delivery attempts, newest first: time, status code, latency, error, outcome"
      })
    )
  )
  .middleware(Caller)
  .annotate(RequiredScope, "alerts:read")
  .prefix("/api/v1")
  .annotateMerge(OpenApi.annotations({ title: "Webhooks", description: "Signed delivery of alert notifications" })) {}

/**
 * One event of the live stream. `reading`: a reading the receiver accepted
 * (as it travels on `glucose.events`); `alert`: a notification the engine
 * decided (as on `glucose.alerts`); `heartbeat`: the stream is alive (no id,
 * so a reconnect resumes after the last real event). `id` is an opaque cursor
 * over every partition: send the last one back as `Last-Event-ID` to resume.
 */
export const LiveEvent = Schema.Union([
  Schema.Struct({
    id: Schema.optional(Schema.String),
    event: Schema.Literal("reading"),
    data: Schema.fromJsonString(GlucoseEvent)
  }),
  Schema.Struct({
    id: Schema.optional(Schema.String),
    event: Schema.Literal("alert"),
    data: Schema.fromJsonString(AlertNotification)
  }),
  Schema.Struct({
    id: Schema.optional(Schema.String),
    event: Schema.Literal("heartbeat"),
    data: Schema.fromJsonString(Schema.Struct({ at: IsoTimestamp }))
  })
])
export type LiveEvent = typeof LiveEvent.Type

/** The app's live view: the caller's new readings and notifications as Server-Sent Events. */
export class LiveGroup extends HttpApiGroup.make("live")
  .add(
    HttpApiEndpoint.get("stream", "/stream", {
      headers: { "last-event-id": Schema.optional(Schema.String) },
      success: HttpApiSchema.StreamSse({ events: LiveEvent }),
      error: [InvalidCursor, ServiceUnavailable]
    }).annotateMerge(
      OpenApi.annotations({
        summary:
          "Server-Sent Events: the caller's new readings and alert notifications as they happen, a heartbeat, and Last-Event-ID resumption over at least the last hour (in order per sensor, without repeats)"
      })
    )
  )
  .middleware(Caller)
  .annotate(RequiredScope, "glucose:read")
  .prefix("/api/v1")
  .annotateMerge(OpenApi.annotations({ title: "Live", description: "The live stream for the app" })) {}

export const HealthStatus = Schema.Struct({
  status: Schema.Literals(["ok", "unavailable"]),
  checks: Schema.Record(Schema.String, Schema.Literals(["ok", "unavailable"]))
})

export class HealthGroup extends HttpApiGroup.make("health", { topLevel: true })
  .add(
    HttpApiEndpoint.get("healthz", "/healthz", { success: HealthStatus }).annotateMerge(
      OpenApi.annotations({ summary: "Liveness: the process is running" })
    ),
    HttpApiEndpoint.get("readyz", "/readyz", {
      success: HealthStatus,
      error: HealthStatus.pipe(HttpApiSchema.status(503))
    }).annotateMerge(OpenApi.annotations({ summary: "Readiness: the stores this process needs answer" }))
  )
  .annotateMerge(
    OpenApi.annotations({ title: "Health", description: "Liveness and readiness, for the orchestrator" })
  ) {}
