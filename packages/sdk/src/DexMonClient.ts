import { DexMonApi } from "@dexmon/api"
import { Config, Context, Effect, Layer, Option } from "effect"
import { FetchHttpClient, HttpClient, HttpClientRequest } from "effect/http"
import { HttpApiClient } from "effect/http-api"

export interface DexMonClientOptions {
  /** Where DexMon listens, e.g. `http://127.0.0.1:8080`. */
  readonly baseUrl: string
  /** The caller in development mode (sent as `X-User-Id`). */
  readonly userId?: string | undefined
  /** An OAuth2 access token (sent as `Authorization: Bearer`). */
  readonly token?: string | undefined
}

/**
 * The typed DexMon client, derived from the one HttpApi declaration: every
 * endpoint, payload, response and error is typed from the server's schemas.
 *
 * ```ts
 * const client = yield* DexMonClient
 * const { event_ids } = yield* client.ingestion.postSensor({
 *   payload: { sensor_id: "cgm-1", timestamp: Date.now(), glucose_value: 65 }
 * })
 * // The consensus CGM statistics of a window (time in ranges, mean, SD, CV, GMI, episodes), in mmol/L.
 * const stats = yield* client.statistics.get({ query: { from, to, units: "mmol/L" } })
 * // The AGP picture of the last 14 days by New York time of day, as the SVG's text.
 * const svg = yield* client.reports.agp({ query: { tz: "America/New_York" } })
 * // Alert episodes: a range filtered by status or kind, the open ones, one by id.
 * const lows = yield* client.alerts.list({ query: { from, to, alert_type: "LOW", status: "RESOLVED" } })
 * const { items } = yield* client.alerts.active()
 * const alert = yield* client.alerts.get({ params: { alert_id: items[0]!.alert_id } })
 * // The person's controls: acknowledge, snooze the kind for an hour, end a sensor's session (202 each).
 * yield* client.alertControls.acknowledge({ params: { alert_id: alert.alert_id } })
 * yield* client.alertControls.snooze({ params: { alert_id: alert.alert_id }, payload: { minutes: 60 } })
 * yield* client.alertControls.stopSensor({ params: { sensor_id: alert.sensor_id } })
 * // A device changing hands: give up its sensor (204; 404 when it is not the caller's), the next poster claims it.
 * yield* client.sensors.release({ params: { sensor_id: alert.sensor_id } })
 * // Alert settings with their ETag; a PUT names it in If-Match.
 * const { body, headers } = yield* client.alertSettings.get()
 * yield* client.alertSettings.put({
 *   payload: { ...body, low: { ...body.low, threshold: 80 } },
 *   headers: { "if-match": headers.etag }
 * })
 * // Webhooks, and the live stream as an Effect Stream (resume with the last event's id).
 * const { id, secret } = yield* client.webhooks.register({ payload: { url: "https://example.com/dexmon" } })
 * const events = yield* client.live.stream({ headers: {} })
 * ```
 *
 * Nothing here lists endpoints: a new endpoint of the API is a new method of the client.
 */
export class DexMonClient extends Context.Service<DexMonClient, HttpApiClient.ForApi<typeof DexMonApi>>()(
  "dexmon/sdk/DexMonClient"
) {
  static readonly layer = (options: DexMonClientOptions) =>
    Layer.effect(
      DexMonClient,
      HttpApiClient.make(DexMonApi, {
        transformClient: (client) =>
          client.pipe(
            HttpClient.mapRequest((request) => {
              const withBase = HttpClientRequest.prependUrl(request, options.baseUrl)
              const withUser =
                options.userId === undefined
                  ? withBase
                  : HttpClientRequest.setHeader(withBase, "x-user-id", options.userId)
              return options.token === undefined ? withUser : HttpClientRequest.bearerToken(withUser, options.token)
            })
          )
      })
    ).pipe(Layer.provide(FetchHttpClient.layer))

  /** `DEXMON_URL` (default `http://127.0.0.1:8080`), `DEXMON_TOKEN` and `DEXMON_USER_ID`. */
  static readonly layerConfig = Layer.unwrap(
    Effect.gen(function* () {
      const baseUrl = yield* Config.String("DEXMON_URL").pipe(Config.withDefault("http://127.0.0.1:8080"))
      const userId = yield* Config.option(Config.String("DEXMON_USER_ID"))
      const token = yield* Config.option(Config.String("DEXMON_TOKEN"))
      return DexMonClient.layer({
        baseUrl,
        userId: Option.getOrUndefined(userId),
        token: Option.getOrUndefined(token)
      })
    })
  )
}
