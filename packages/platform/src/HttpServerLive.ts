import { createServer } from "node:http"
import type { Duplex } from "node:stream"
import { Caller } from "@dexmon/api"
import { isSecretInPath, Metrics, RedactionLive, redactPath } from "@dexmon/observability"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { ByteSize, Cause, Config, Duration, Effect, Exit, Layer, Option, Scope } from "effect"
import {
  HttpIncomingMessage,
  HttpMiddleware,
  HttpRouter,
  HttpServer,
  HttpServerError,
  HttpServerRequest,
  HttpServerResponse
} from "effect/http"
import { type HttpApi, HttpApiBuilder, type HttpApiGroup, HttpApiScalar } from "effect/http-api"
import { CallerLive } from "./Authentication.ts"
import { Readiness } from "./Readiness.ts"
import { RequestValidationLive } from "./RequestValidationLive.ts"
import { onShutdownSignal } from "./Shutdown.ts"

const KNOWN_ROUTES = new Set([
  "/api/v1/glucose/sensor",
  "/api/v1/glucose/manual",
  "/api/v1/readings",
  "/api/v1/alerts",
  "/api/v1/alerts/active",
  "/api/v1/entries",
  "/api/v1/entries.json",
  "/api/v1/entries.csv",
  "/api/v1/entries.tsv",
  "/api/v1/entries.txt",
  "/api/v1/devicestatus",
  "/api/v1/status.json",
  "/api/v1/experiments/test",
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
  if (/^\/api\/v1\/entries\/[^/]+$/.test(path)) return "/api/v1/entries/:spec"
  if (/^\/api\/v2\/authorization\/request\/[^/]+$/.test(path)) return "/api/v2/authorization/request/:token"
  return "other"
}

/**
 * Counts and times every request by method, route and status, including refused and failed ones. A request whose
 * path carries a secret (Nightscout's token exchange) is logged here with the secret redacted, instead of by the
 * server's request logger, which would write the path as it came.
 */
const measureRequests = <E, R>(app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const started = performance.now()
    const secretInPath = isSecretInPath(request.url)
    if (secretInPath) yield* HttpMiddleware.withLoggerDisabled(Effect.void)
    return yield* app.pipe(
      Effect.onExit((exit) => {
        const status = Exit.isSuccess(exit)
          ? exit.value.status
          : HttpServerError.causeResponseStripped(exit.cause)[0].status
        const labels = { method: request.method, route: routeOf(request.url), status: String(status) }
        Metrics.httpRequests.inc(labels)
        const observed = Metrics.observe(Metrics.httpRequestDuration, labels, (performance.now() - started) / 1000)
        return secretInPath
          ? Effect.andThen(
              observed,
              Effect.annotateLogs(Effect.log("Sent HTTP response"), {
                "http.method": request.method,
                "http.url": redactPath(request.url),
                "http.status": status
              })
            )
          : observed
      })
    )
  })

/** `GET /metrics`: every metric of this process, in OpenMetrics (exemplars included) when asked, else the text format. */
const MetricsRoute = HttpRouter.add(
  "GET",
  "/metrics",
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const { text, contentType } = yield* Metrics.exposition(request.headers.accept)
    return HttpServerResponse.text(text, { headers: { "content-type": contentType } })
  })
)

/** The paths `DEXMON_ADMIN_PORT` moves off the public port: what they tell is for the operator only. */
const ADMIN_ONLY_PATHS = new Set(["/metrics", "/readyz"])

/**
 * A path as the router matches it: the router ignores case, repeated and trailing slashes and what
 * follows `;` or `#`, and decodes escapes, so `/READYZ/`, `//readyz` and `/%72eadyz` all reach
 * `/readyz`; the admin-only check compares this form, or they would slip past it.
 */
export const routedPath = (url: string): string => {
  const raw = (url.split("?")[0] ?? "").split(/[;#]/)[0] ?? ""
  // Escape by escape, so a malformed one stays as it is instead of throwing.
  const decoded = raw.replace(/%([0-9a-f]{2})/gi, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)))
  const collapsed = decoded.toLowerCase().replace(/\/{2,}/g, "/")
  return collapsed.length > 1 ? collapsed.replace(/\/$/, "") : collapsed
}

/**
 * The admin port's own routes: `/metrics`, `/readyz` (answering as the API's `/readyz` does) and
 * `/healthz`, so probes and scraping need only that port.
 */
const AdminRoutes = Layer.mergeAll(
  MetricsRoute,
  HttpRouter.add("GET", "/healthz", HttpServerResponse.jsonUnsafe({ status: "ok", checks: {} })),
  HttpRouter.add(
    "GET",
    "/readyz",
    Effect.gen(function* () {
      const readiness = yield* Readiness
      const checks = yield* readiness.check
      const ready = Object.values(checks).every((status) => status === "ok")
      return HttpServerResponse.jsonUnsafe(
        { status: ready ? "ok" : "unavailable", checks },
        { status: ready ? 200 : 503 }
      )
    })
  )
)

type Route = { readonly method: string; readonly pattern: RegExp }

/** `/api/v1/alerts/:alert_id` as a pattern matching any one segment in place of each parameter. */
const routePattern = (path: string): RegExp =>
  new RegExp(
    `^${path
      .split("/")
      .map((segment) => (segment.startsWith(":") ? "[^/]+" : segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")))
      .join("/")}$`
  )

/** Every (method, path) the server answers, for telling an unknown path (404) from a wrong method (405). */
const routesOf = (api: { readonly groups: unknown }, extra: ReadonlyArray<string>): ReadonlyArray<Route> => [
  ...Object.values(api.groups as Record<string, HttpApiGroup.Top>).flatMap((group) =>
    Object.values(group.endpoints).map((endpoint) => ({
      method: endpoint.method,
      pattern: routePattern(endpoint.path)
    }))
  ),
  ...extra.map((path) => ({ method: "GET", pattern: routePattern(path) }))
]

const isJson = (response: HttpServerResponse.HttpServerResponse) =>
  /json/i.test(
    ("contentType" in response.body ? response.body.contentType : undefined) ?? response.headers["content-type"] ?? ""
  )

const jsonError = (
  status: number,
  tag: string,
  message: string,
  headers: Record<string, string> = {}
): HttpServerResponse.HttpServerResponse => HttpServerResponse.jsonUnsafe({ _tag: tag, message }, { status, headers })

/**
 * Every error leaves as JSON with a `_tag` and a `message`, whoever made it: the framework answers an
 * unknown route, a body over the limit or an unsupported content type with an empty or plain-text body,
 * and a client must not need a second parser for those. An unknown path is 404; a known path with
 * another method is 405 with `Allow`. Those refusals become plain answers; a server error stays a
 * failure (a defect is still logged), its JSON response riding along as the response defect the server sends. With an admin port, its paths are 404
 * here before anything runs.
 */
const jsonErrors = (options: {
  readonly routes: ReadonlyArray<Route>
  readonly hidden: ReadonlySet<string>
  readonly maxBodyBytes: number
}) =>
  HttpRouter.middleware(
    (app) =>
      Effect.gen(function* () {
        const request = yield* HttpServerRequest.HttpServerRequest
        const path = request.url.split("?")[0] ?? ""
        if (options.hidden.has(routedPath(request.url))) return jsonError(404, "NotFound", "no such route")
        const asJson = (response: HttpServerResponse.HttpServerResponse) => {
          if (response.status < 400 || isJson(response)) return response
          const connection = response.headers.connection
          const headers: Record<string, string> = connection === undefined ? {} : { connection }
          switch (response.status) {
            case 404: {
              const allowed = [
                ...new Set(options.routes.filter((route) => route.pattern.test(path)).map((route) => route.method))
              ]
              if (allowed.includes("GET")) allowed.push("HEAD")
              return allowed.length === 0
                ? jsonError(404, "NotFound", "no such route", headers)
                : jsonError(405, "MethodNotAllowed", `method ${request.method} is not allowed here`, {
                    ...headers,
                    allow: allowed.join(", ")
                  })
            }
            case 413:
              return jsonError(
                413,
                "PayloadTooLarge",
                `request body is larger than ${options.maxBodyBytes} bytes`,
                headers
              )
            case 415:
              return jsonError(415, "UnsupportedMediaType", "unsupported content-type; send application/json", headers)
            case 500:
              return jsonError(500, "InternalServerError", "the request failed on the server", headers)
            case 503:
              return jsonError(503, "ServiceUnavailable", "the server is unavailable; retry later", headers)
            default:
              return jsonError(response.status, "HttpError", `request refused with status ${response.status}`, headers)
          }
        }
        return yield* app.pipe(
          Effect.map(asJson),
          Effect.catchCause((cause) =>
            Effect.flatMap(HttpServerError.causeResponse(cause), ([response]) => {
              const json = asJson(response)
              if (json === response) return Effect.failCause(cause)
              // A refusal (404, 405, 413, 415) is an answer, not a failure: kept as a failure, the server span
              // recorded it as 500. A server error stays a failure, so it is still logged with its cause.
              if (json.status < 500) return Effect.succeed(json)
              // Not `Cause.combine`: it hashes the reasons, and a RouteNotFound holds the request.
              return Effect.failCause(Cause.fromReasons([...cause.reasons, Cause.makeDieReason(json)]))
            })
          )
        )
      }),
    { global: true }
  )

/** Node's own per-connection limits, `DEXMON_HTTP_*`: a slow or greedy client cannot hold the server. */
const serverLimitsConfig = Config.all({
  headersTimeout: Config.Duration("DEXMON_HTTP_HEADERS_TIMEOUT").pipe(Config.withDefault(Duration.seconds(10))),
  requestTimeout: Config.Duration("DEXMON_HTTP_REQUEST_TIMEOUT").pipe(Config.withDefault(Duration.seconds(60))),
  keepAliveTimeout: Config.Duration("DEXMON_HTTP_KEEPALIVE_TIMEOUT").pipe(Config.withDefault(Duration.seconds(5))),
  maxConnections: Config.Int("DEXMON_HTTP_MAX_CONNECTIONS").pipe(Config.withDefault(10_000)),
  maxHeaderBytes: Config.Int("DEXMON_HTTP_MAX_HEADER_BYTES").pipe(Config.withDefault(16_384))
})
type ServerLimits = typeof serverLimitsConfig extends Config.Config<infer A> ? A : never

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
const layerDrainingServer = (options: {
  readonly port: number
  readonly host: string
  readonly limits: ServerLimits
}) => {
  let draining = false
  const { limits, ...listen } = options
  // `headersTimeout` bounds receiving the headers, `requestTimeout` the whole request (never the response:
  // the live stream stays open); Node checks them every `connectionsCheckingInterval`, so a second, not 30.
  const server = createServer({
    headersTimeout: Duration.toMillis(limits.headersTimeout),
    requestTimeout: Duration.toMillis(limits.requestTimeout),
    keepAliveTimeout: Duration.toMillis(limits.keepAliveTimeout),
    maxHeaderSize: limits.maxHeaderBytes,
    connectionsCheckingInterval: 1_000
  })
  // Over the cap, Node closes a new connection at once, before reading anything from it.
  server.maxConnections = limits.maxConnections
  // What Node refuses before any route runs (headers too slow or too large, a request that is not HTTP)
  // is answered as JSON too, like every other error, and the connection closed.
  server.on("clientError", (error: NodeJS.ErrnoException, socket: Duplex) => {
    if (error.code === "ECONNRESET" || !socket.writable) {
      socket.destroy()
      return
    }
    const [status, reason, tag, message] =
      error.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? [408, "Request Timeout", "RequestTimeout", "the request was not received in time"]
        : error.code === "HPE_HEADER_OVERFLOW"
          ? [431, "Request Header Fields Too Large", "HeadersTooLarge", "the request headers are too large"]
          : [400, "Bad Request", "BadRequest", "the request is not valid HTTP"]
    const body = JSON.stringify({ _tag: tag, message })
    socket.end(
      `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`
    )
  })
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
    ...listen,
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
 * The interactive API reference at `/docs` (Scalar's page), built by the first request for it. Scalar's
 * script is 3 MB of JavaScript that costs a server some 13 MB resident once loaded, and most servers'
 * docs are never opened (issue 18: every service stays under 200 MB).
 */
export const docsRoute = <Id extends string, Groups extends HttpApiGroup.Constraint>(
  api: HttpApi.HttpApi<Id, Groups>,
  path: `/${string}` = "/docs"
) =>
  HttpRouter.use(
    Effect.fnUntraced(function* (router) {
      const scope = yield* Scope.Scope
      const page = yield* Effect.cached(
        HttpRouter.toHttpEffect(HttpApiScalar.layer(api, { path })).pipe(Effect.provideService(Scope.Scope, scope))
      )
      yield* router.add("GET", path, Effect.flatten(page))
    })
  )

/**
 * Serves an HttpApi (with `/openapi.json` and interactive docs at `/docs`) and
 * `/metrics` on `HOST`:`PORT`. Request bodies above `DEXMON_MAX_BODY_BYTES`
 * are refused before they are read whole. With `DEXMON_ADMIN_PORT`, `/metrics`
 * and `/readyz` are served there (on `DEXMON_ADMIN_HOST`, else `HOST`, with
 * `/healthz`) and are 404 on the public port.
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
      const limits = yield* serverLimitsConfig
      if (Duration.isGreaterThan(limits.headersTimeout, limits.requestTimeout)) {
        return yield* Effect.die(new Error("DEXMON_HTTP_HEADERS_TIMEOUT must not exceed DEXMON_HTTP_REQUEST_TIMEOUT"))
      }
      const adminPort = yield* Config.Port("DEXMON_ADMIN_PORT").pipe(Config.option)
      const adminHost = yield* Config.String("DEXMON_ADMIN_HOST").pipe(Config.withDefault(host))
      // Only an API with authenticated endpoints needs (and configures) the caller: health-only servers do not.
      const authenticated = Object.values(api.groups as unknown as Record<string, HttpApiGroup.Top>).some((group) =>
        Object.values(group.endpoints).some((endpoint) => endpoint.middlewares.has(Caller))
      )
      // Without authenticated endpoints nothing asks for `Caller`, so the empty layer stands in for it.
      const callerLayer = authenticated ? CallerLive : (Layer.empty as unknown as typeof CallerLive)
      const admin = Option.isSome(adminPort)
      const routes = Layer.mergeAll(
        HttpApiBuilder.layer(api, { openapiPath: "/openapi.json" }).pipe(
          Layer.provide(handlers),
          Layer.provide(RequestValidationLive),
          Layer.provide(callerLayer)
        ),
        docsRoute(api),
        admin ? Layer.empty : MetricsRoute,
        jsonErrors({
          routes: routesOf(api, admin ? ["/openapi.json", "/docs"] : ["/openapi.json", "/docs", "/metrics"]),
          hidden: admin ? ADMIN_ONLY_PATHS : new Set(),
          maxBodyBytes
        })
      )
      const publicServer = HttpRouter.serve(routes, {
        middleware: (app) =>
          measureRequests(Effect.provideService(app, HttpIncomingMessage.MaxBodySize, ByteSize.bytes(maxBodyBytes)))
      }).pipe(
        // Secret query values and headers never reach the request spans or logged causes.
        Layer.provide(RedactionLive),
        Layer.provide(layerDrainingServer({ port, host, limits })),
        Layer.tap(() =>
          Effect.logInfo(`DexMon API listening on http://${host}:${port} (docs at /docs${admin ? "" : ", /metrics"})`)
        )
      )
      if (Option.isNone(adminPort)) return publicServer
      const adminRoutes = Layer.mergeAll(
        AdminRoutes,
        jsonErrors({
          routes: ["/metrics", "/healthz", "/readyz"].map((path) => ({ method: "GET", pattern: routePattern(path) })),
          hidden: new Set(),
          maxBodyBytes
        })
      )
      const adminServer = HttpRouter.serve(adminRoutes, { middleware: measureRequests }).pipe(
        Layer.provide(RedactionLive),
        Layer.provide(layerDrainingServer({ port: adminPort.value, host: adminHost, limits })),
        Layer.tap(() =>
          Effect.logInfo(
            `DexMon admin listening on http://${adminHost}:${adminPort.value} (/metrics, /readyz, /healthz)`
          )
        )
      )
      return Layer.merge(publicServer, adminServer)
    })
  )
