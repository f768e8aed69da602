import { createHash } from "node:crypto"
import type { AlertSettings } from "@dexmon/alerting"
import { CurrentCaller, DexMonApi, NotFound, ReadingsPage, ReadingView } from "@dexmon/api"
import { ReadingsQuery } from "@dexmon/archive"
import { AlertStore, ReadingStore } from "@dexmon/ports"
import { Effect, Layer, Option, Schema, Stream } from "effect"
import { HttpServerRequest, HttpServerResponse } from "effect/http"
import { HttpApiBuilder, HttpApiSchema } from "effect/http-api"
import { AlertControls } from "./AlertControls.ts"
import { DeliveryStatuses } from "./DeliveryStatuses.ts"
import { LiveFeed } from "./LiveFeed.ts"
import { NightscoutCredentialsHttp } from "./NightscoutCredentialsHttp.ts"
import { exportReadings } from "./ReadingsExport.ts"
import { previousSensorReading, readingView, readingViews } from "./ReadingViews.ts"
import { ReportsHttp } from "./ReportsHttp.ts"
import { SensorsHttp } from "./SensorsHttp.ts"
import { StatisticsHttp } from "./StatisticsHttp.ts"
import { readPathUnavailable, unavailable } from "./Unavailable.ts"
import { UserAlertSettings } from "./UserAlertSettings.ts"
import { Webhooks } from "./Webhooks.ts"

const DEFAULT_PAGE_SIZE = 100

/**
 * Answers with the representation and its ETag, or 304 without a body when
 * the client's `If-None-Match` names the same ETag.
 */
const withEtag = Effect.fnUntraced(function* (etag: string, body: unknown) {
  const request = yield* HttpServerRequest.HttpServerRequest
  const quoted = `"${etag}"`
  const held = request.headers["if-none-match"]
  if (held?.split(",").some((tag) => tag.trim().replace(/^W\//, "") === quoted)) {
    return HttpServerResponse.empty({ status: 304, headers: { etag: quoted } })
  }
  return HttpServerResponse.jsonUnsafe(body, { headers: { etag: quoted } })
})

const encodePage = Schema.encodeSync(ReadingsPage)
const encodeReading = Schema.encodeSync(ReadingView)

export const ReadingsHttp = HttpApiBuilder.group(
  DexMonApi,
  "readings",
  Effect.fn(function* (handlers) {
    const readings = yield* ReadingStore
    const readingsOverTime = yield* ReadingsQuery
    return handlers
      .handle(
        "list",
        Effect.fn("ReadingsHttp.list")(function* ({ query }) {
          const caller = yield* CurrentCaller
          const units = query.units ?? "mg/dL"
          // Hot and archived readings together: a range may reach past the hot retention.
          const stored = yield* readingsOverTime
            .list({
              user_id: caller.userId,
              from: query.from,
              to: query.to,
              sensor_id: query.sensor_id,
              limit: query.limit ?? DEFAULT_PAGE_SIZE,
              cursor: query.cursor
            })
            .pipe(Effect.catchTags(readPathUnavailable))
          const items = yield* readingViews(readingsOverTime, caller.userId, stored.items, units).pipe(
            Effect.catchTags(readPathUnavailable),
            // The trend's lookups go from positions of this page, never from a client's cursor.
            Effect.catchTag("InvalidCursor", Effect.die)
          )
          const page = { items, next_cursor: stored.next_cursor }
          // A page's etag changes exactly when one of its readings, or where the next page starts, changes.
          const pageEtag = createHash("sha256")
            .update(page.items.map((r) => `${r.sensor_id}/${r.timestamp}/${r.etag}`).join("\n"))
            .update(`\n${page.next_cursor ?? ""}`)
            .digest("hex")
            .slice(0, 24)
          return yield* withEtag(pageEtag, encodePage(page))
        })
      )
      .handle(
        "export",
        Effect.fn("ReadingsHttp.export")(function* ({ query }) {
          const caller = yield* CurrentCaller
          const window = { user_id: caller.userId, from: query.from, to: query.to, sensor_id: query.sensor_id }
          // A store that is down is a 503 before the first byte; one that fails later cuts the download short.
          yield* readingsOverTime
            .list({ ...window, limit: 1 })
            .pipe(Effect.catchTags(readPathUnavailable), Effect.catchTag("InvalidCursor", Effect.die))
          const body = exportReadings(readingsOverTime, {
            ...window,
            units: query.units ?? "mg/dL",
            format: query.format
          }).pipe(Stream.tapError((error) => Effect.logError("readings export cut short", error)))
          const name = `dexmon-readings-${new Date(query.from).toISOString()}-${new Date(query.to).toISOString()}`
          return HttpServerResponse.stream(body, {
            contentType: query.format === "csv" ? "text/csv; charset=utf-8" : "application/x-ndjson",
            headers: {
              "content-disposition": `attachment; filename="${name}.${query.format === "csv" ? "csv" : "ndjson"}"`
            }
          })
        })
      )
      .handle(
        "get",
        Effect.fn("ReadingsHttp.get")(function* ({ params, query }) {
          const caller = yield* CurrentCaller
          const reading = yield* readings
            .get(caller.userId, params.sensor_id, params.timestamp)
            .pipe(Effect.catchTag("ReadingStoreError", unavailable("the readings store")))
          if (reading === undefined) return yield* new NotFound({ message: "no such reading for this caller" })
          const previous =
            reading.source === "SENSOR"
              ? yield* previousSensorReading(readingsOverTime, caller.userId, reading).pipe(
                  Effect.catchTags(readPathUnavailable),
                  Effect.catchTag("InvalidCursor", Effect.die)
                )
              : undefined
          const view = readingView(reading, query.units ?? "mg/dL", previous)
          return yield* withEtag(view.etag, encodeReading(view))
        })
      )
  })
)

export const AlertsHttp = HttpApiBuilder.group(
  DexMonApi,
  "alerts",
  Effect.fn(function* (handlers) {
    const alerts = yield* AlertStore
    const statuses = yield* DeliveryStatuses
    const storeUnavailable = unavailable("the alert store")
    return handlers
      .handle(
        "list",
        Effect.fn("AlertsHttp.list")(function* ({ query }) {
          const caller = yield* CurrentCaller
          const page = yield* alerts
            .list({
              user_id: caller.userId,
              from: query.from,
              to: query.to,
              limit: query.limit ?? DEFAULT_PAGE_SIZE,
              cursor: query.cursor,
              status: query.status,
              alert_type: query.alert_type
            })
            .pipe(Effect.catchTag("AlertStoreError", storeUnavailable))
          return { ...page, items: yield* statuses.of(caller.userId, page.items) }
        })
      )
      .handle(
        "active",
        Effect.fn("AlertsHttp.active")(function* () {
          const caller = yield* CurrentCaller
          const items = yield* alerts.listOpen(caller.userId).pipe(Effect.catchTag("AlertStoreError", storeUnavailable))
          return { items: yield* statuses.of(caller.userId, items) }
        })
      )
      .handle(
        "get",
        Effect.fn("AlertsHttp.get")(function* ({ params }) {
          const caller = yield* CurrentCaller
          // The store answers none for another user's id too, so its existence is not revealed.
          const alert = yield* alerts
            .get(caller.userId, params.alert_id)
            .pipe(Effect.catchTag("AlertStoreError", storeUnavailable))
          if (Option.isNone(alert)) return yield* new NotFound({ message: "no such alert for this caller" })
          const [view] = yield* statuses.of(caller.userId, [alert.value])
          return view!
        })
      )
  })
).pipe(Layer.provide(DeliveryStatuses.layer))

/** The owner's controls: each answers 202 once the action is on the sensor's event log. */
export const AlertControlsHttp = HttpApiBuilder.group(
  DexMonApi,
  "alertControls",
  Effect.fn(function* (handlers) {
    const controls = yield* AlertControls
    return handlers
      .handle(
        "acknowledge",
        Effect.fn("AlertControlsHttp.acknowledge")(function* ({ params }) {
          const caller = yield* CurrentCaller
          return yield* controls.acknowledge(caller.userId, params.alert_id)
        })
      )
      .handle(
        "snooze",
        Effect.fn("AlertControlsHttp.snooze")(function* ({ params, payload }) {
          const caller = yield* CurrentCaller
          return yield* controls.snooze(caller.userId, params.alert_id, payload.minutes)
        })
      )
      .handle(
        "stopSensor",
        Effect.fn("AlertControlsHttp.stopSensor")(function* ({ params }) {
          const caller = yield* CurrentCaller
          return yield* controls.stopSensor(caller.userId, params.sensor_id)
        })
      )
  })
).pipe(Layer.provide(AlertControls.layer))

export const AlertSettingsHttp = HttpApiBuilder.group(
  DexMonApi,
  "alertSettings",
  Effect.fn(function* (handlers) {
    const settings = yield* UserAlertSettings
    const withEtag = ({ settings, etag }: { readonly settings: AlertSettings; readonly etag: string }) =>
      HttpApiSchema.withHeaders({ body: settings, headers: { etag } })
    return handlers
      .handle(
        "get",
        Effect.fn("AlertSettingsHttp.get")(function* () {
          const caller = yield* CurrentCaller
          return withEtag(yield* settings.read(caller.userId))
        })
      )
      .handle(
        "put",
        Effect.fn("AlertSettingsHttp.put")(function* ({ payload, headers }) {
          const caller = yield* CurrentCaller
          return withEtag(yield* settings.replace(caller.userId, payload, headers["if-match"]))
        })
      )
  })
).pipe(Layer.provide(UserAlertSettings.layer))

export const WebhooksHttp = HttpApiBuilder.group(
  DexMonApi,
  "webhooks",
  Effect.fn(function* (handlers) {
    const webhooks = yield* Webhooks
    return handlers
      .handle(
        "register",
        Effect.fn("WebhooksHttp.register")(function* ({ payload }) {
          const caller = yield* CurrentCaller
          return yield* webhooks.register(caller.userId, payload)
        })
      )
      .handle(
        "list",
        Effect.fn("WebhooksHttp.list")(function* () {
          const caller = yield* CurrentCaller
          return { items: yield* webhooks.list(caller.userId) }
        })
      )
      .handle(
        "remove",
        Effect.fn("WebhooksHttp.remove")(function* ({ params }) {
          const caller = yield* CurrentCaller
          yield* webhooks.remove(caller.userId, params.webhook_id)
        })
      )
      .handle(
        "rotateSecret",
        Effect.fn("WebhooksHttp.rotateSecret")(function* ({ params }) {
          const caller = yield* CurrentCaller
          return yield* webhooks.rotateSecret(caller.userId, params.webhook_id)
        })
      )
      .handle(
        "test",
        Effect.fn("WebhooksHttp.test")(function* ({ params }) {
          const caller = yield* CurrentCaller
          return yield* webhooks.test(caller.userId, params.webhook_id)
        })
      )
      .handle(
        "deliveries",
        Effect.fn("WebhooksHttp.deliveries")(function* ({ params, query }) {
          const caller = yield* CurrentCaller
          const items = yield* webhooks.deliveries(caller.userId, params.webhook_id, query.limit ?? DEFAULT_PAGE_SIZE)
          return {
            items: items.map((attempt) => ({
              delivery_id: attempt.delivery_id,
              notification_id: attempt.notification_id,
              attempt: attempt.attempt,
              at: attempt.at,
              status_code: attempt.status_code,
              latency_ms: attempt.latency_ms,
              error: attempt.error,
              outcome: attempt.outcome
            }))
          }
        })
      )
  })
).pipe(Layer.provide(Webhooks.layer))

/** The live stream: the caller's own readings and notifications, from the gateway's one feed. */
export const LiveHttp = HttpApiBuilder.group(
  DexMonApi,
  "live",
  Effect.fn(function* (handlers) {
    const feed = yield* LiveFeed
    return handlers.handle(
      "stream",
      Effect.fn("LiveHttp.stream")(function* ({ headers }) {
        const caller = yield* CurrentCaller
        // Readings need glucose:read (the group's scope); alert notifications alerts:read as well.
        return yield* feed.open(caller.userId, headers["last-event-id"], { alerts: caller.scopes.has("alerts:read") })
      })
    )
  })
).pipe(Layer.provide(LiveFeed.layer))

export const GatewayHttp = Layer.mergeAll(
  ReadingsHttp,
  StatisticsHttp,
  ReportsHttp,
  AlertsHttp,
  AlertControlsHttp,
  AlertSettingsHttp,
  WebhooksHttp,
  NightscoutCredentialsHttp,
  SensorsHttp,
  LiveHttp
)
