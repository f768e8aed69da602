import { createServer } from "node:http"
import { Caller } from "@dexmon/api"
import { Metrics } from "@dexmon/observability"
import { NodeHttpServer } from "@effect/platform-node"
import { ByteSize, Config, Duration, Effect, Exit, Layer } from "effect"
import {
  HttpIncomingMessage,
  HttpRouter,
  HttpServer,
  HttpServerError,
  HttpServerRequest,
  HttpServerResponse
} from "effect/http"
import { type HttpApi, HttpApiBuilder, type HttpApiGroup, HttpApiScalar } from "effect/http-api"
import { CallerLive } from "./Authentication.ts"
import { RequestValidationLive } from "./RequestValidationLive.ts"
import { onShutdownSignal } from "./Shutdown.ts"

const KNOWN_ROUTES = new Set([
  "/api/v1/glucose/sensor",
  "/api/v1/glucose/manual",
  "/api/v1/readings",
  "/api/v1/alerts",
  "/api/v1/alerts/active",
  "/healthz",
  "/readyz",
  "/metrics",
  "/openapi.json",
  "/docs"
])

/** The route template of a request path, so metric labels stay few whatever the URLs. */
export const routeOf = (url: string): string => {
  const path = url.split("?")[0] ?? ""
  if (KNOWN_ROUTES.has(path)) return path
  if (/^\/api\/v1\/readings\/[^/]+\/[^/]+$/.test(path)) return "/api/v1/readings/:sensor_id/:timestamp"
  if (/^\/api\/v1\/alerts\/[^/]+$/.test(path)) return "/api/v1/alerts/:alert_id"
  return "other"
}

/** Counts and times every request by method, route and status, including refused and failed ones. */
const measureRequests = <E, R>(app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const stop = Metrics.httpRequestDuration.startTimer()
    return yield* app.pipe(
      Effect.onExit((exit) =>
        Effect.sync(() => {
          const status = Exit.isSuccess(exit)
            ? exit.value.status
            : HttpServerError.causeResponseStripped(exit.cause)[0].status
          const labels = { method: request.method, route: routeOf(request.url), status: String(status) }
          stop(labels)
          Metrics.httpRequests.inc(labels)
        })
      )
    )
  })

/** `GET /metrics`: every metric of this process in the Prometheus exposition format. */
const MetricsRoute = HttpRouter.add(
  "GET",
  "/metrics",
  Effect.map(Metrics.exposition, ({ text, contentType }) =>
    HttpServerResponse.text(text, { headers: { "content-type": contentType } })
  )
)

/** How long in-flight requests may finish once shutdown starts, before their connections are closed. */
const DRAIN_MILLIS = 5_000

/**
 * A Node HTTP server that drains on shutdown: from the moment the layers
 * start closing, every response says `Connection: close` and idle keep-alive
 * connections are closed, so clients move to another instance instead of
 * holding this one open; whatever is still open after `DRAIN_MILLIS` is cut
 * (a client that got no answer retries; the receiver's dedup and the conflict
 * rule make a retried reading harmless).
 */
const layerDrainingServer = (options: { readonly port: number; readonly host: string }) => {
  let draining = false
  const server = createServer()
  server.on("request", (_request, response) => {
    if (draining) response.setHeader("connection", "close")
  })
  const drain = () => {
    if (draining) return
    draining = true
    server.closeIdleConnections()
    setTimeout(() => server.closeAllConnections(), DRAIN_MILLIS).unref()
  }
  // Draining starts with the signal itself: the server's own graceful close begins as soon as the
  // service is interrupted, before any layer finalizer, and would otherwise wait on busy keep-alive
  // connections. The finalizer covers shutdowns that come without a signal.
  onShutdownSignal(drain)
  const nodeServer = NodeHttpServer.layer(() => server, {
    ...options,
    gracefulShutdownTimeout: Duration.millis(DRAIN_MILLIS + 1_000)
  })
  const drainOnShutdown = Layer.effectDiscard(
    Effect.gen(function* () {
      yield* HttpServer.HttpServer
      yield* Effect.addFinalizer(() => Effect.sync(drain))
    })
  )
  return drainOnShutdown.pipe(Layer.provideMerge(nodeServer))
}

/**
 * Serves an HttpApi (with `/openapi.json` and interactive docs at `/docs`) and
 * `/metrics` on `HOST`:`PORT`. Request bodies above `DEXMON_MAX_BODY_BYTES`
 * are refused before they are read whole.
 */
export const layerHttpServer = <Id extends string, Groups extends HttpApiGroup.Constraint, E, R>(
  api: HttpApi.HttpApi<Id, Groups>,
  handlers: Layer.Layer<HttpApiGroup.ToService<Id, Groups>, E, R>
) =>
  Layer.unwrap(
    Effect.gen(function* () {
      const port = yield* Config.Port("PORT").pipe(Config.withDefault(8080))
      const host = yield* Config.String("HOST").pipe(Config.withDefault("127.0.0.1"))
      const maxBodyBytes = yield* Config.Int("DEXMON_MAX_BODY_BYTES").pipe(Config.withDefault(1_048_576))
      // Only an API with authenticated endpoints needs (and configures) the caller: health-only servers do not.
      const authenticated = Object.values(api.groups as unknown as Record<string, HttpApiGroup.Top>).some((group) =>
        Object.values(group.endpoints).some((endpoint) => endpoint.middlewares.has(Caller))
      )
      // Without authenticated endpoints nothing asks for `Caller`, so the empty layer stands in for it.
      const callerLayer = authenticated ? CallerLive : (Layer.empty as unknown as typeof CallerLive)
      const routes = Layer.mergeAll(
        HttpApiBuilder.layer(api, { openapiPath: "/openapi.json" }).pipe(
          Layer.provide(handlers),
          Layer.provide(RequestValidationLive),
          Layer.provide(callerLayer)
        ),
        HttpApiScalar.layer(api, { path: "/docs" }),
        MetricsRoute
      )
      return HttpRouter.serve(routes, {
        middleware: (app) =>
          measureRequests(Effect.provideService(app, HttpIncomingMessage.MaxBodySize, ByteSize.bytes(maxBodyBytes)))
      }).pipe(
        Layer.provide(layerDrainingServer({ port, host })),
        Layer.tap(() => Effect.logInfo(`DexMon API listening on http://${host}:${port} (docs at /docs, /metrics)`))
      )
    })
  )
