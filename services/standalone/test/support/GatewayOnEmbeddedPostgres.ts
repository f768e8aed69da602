import { AlertRules } from "@dexmon/alerting"
import { GatewayApi } from "@dexmon/api"
import { ReadingsQuery } from "@dexmon/archive"
import { EventIds } from "@dexmon/domain"
import { GatewayHttp } from "@dexmon/gateway"
import { HealthHttp, layerHttpServer, Readiness } from "@dexmon/platform"
import {
  LocalFolderArchiveStore,
  PostgresAlertSettingsStore,
  PostgresAlertStore,
  PostgresArchiveLedger,
  PostgresDeliveryOutbox,
  PostgresEventLog,
  PostgresNightscoutCredentialStore,
  PostgresSensorOwnership,
  PostgresWebhookStore,
  SqlReadingStore,
  Topics
} from "@dexmon/ports"
import { DexMonClient } from "@dexmon/sdk"
import { freePort, layerEmbeddedPostgresTest, tempDir } from "@dexmon/testing"
import { ConfigProvider, Context, Effect, Layer } from "effect"
import { FetchHttpClient, HttpClient, HttpClientRequest } from "effect/http"

/** Where the gateway under test listens. */
export class Gateway extends Context.Service<Gateway, { readonly baseUrl: string }>()(
  "dexmon/standalone/test/support/Gateway"
) {}

/**
 * The gateway's HTTP server as `services/gateway/src/main.ts` composes it, on a
 * free port, with every store it serves (alerts, settings, webhooks and their
 * delivery outbox, readings, the archive, the event log) on a throw-away
 * embedded PostgreSQL. Security is disabled: the caller is `X-User-Id`. The
 * stores stay in the layer's output, so a test can read behind the API.
 * `name` keeps each suite's temp folder and topics apart.
 */
export const layerGatewayOnEmbeddedPostgres = (name: string) =>
  Layer.unwrap(
    Effect.gen(function* () {
      const port = yield* freePort
      const archiveDir = yield* tempDir(name)
      const stores = Layer.mergeAll(
        PostgresAlertStore.layer,
        PostgresArchiveLedger.layer,
        LocalFolderArchiveStore.layer(archiveDir),
        PostgresAlertSettingsStore.layer,
        PostgresWebhookStore.layer,
        PostgresNightscoutCredentialStore.layer,
        PostgresDeliveryOutbox.layer,
        PostgresSensorOwnership.layer,
        PostgresEventLog.layer.pipe(Layer.provideMerge(Layer.succeed(Topics, Topics.make(2, `${name}.`))))
      ).pipe(
        Layer.provideMerge(SqlReadingStore.layer),
        Layer.provideMerge(Layer.mergeAll(EventIds.layer, AlertRules.layer)),
        Layer.provideMerge(layerEmbeddedPostgresTest)
      )
      const env = { PORT: String(port), HOST: "127.0.0.1", SECURITY_DISABLED: "true" }
      return layerHttpServer(GatewayApi, Layer.mergeAll(GatewayHttp, HealthHttp)).pipe(
        Layer.provide(Readiness.layer),
        Layer.provide(ReadingsQuery.layer),
        Layer.provideMerge(stores),
        Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env }))),
        Layer.merge(Layer.succeed(Gateway, { baseUrl: `http://127.0.0.1:${port}` }))
      )
    })
  )

/** Runs `effect` with the SDK, as `user` (the development caller, `X-User-Id`). */
export const asUser =
  (user: string) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.gen(function* () {
      const { baseUrl } = yield* Gateway
      return yield* Effect.provide(effect, DexMonClient.layer({ baseUrl, userId: user }))
    })

/** What a raw request answered: the status, the body exactly as sent, and that body parsed (`{}` when empty). */
export interface RawResponse {
  readonly status: number
  readonly etag: string | undefined
  readonly text: string
  readonly body: {
    readonly _tag?: string
    readonly issues?: ReadonlyArray<{ readonly path: string; readonly message: string }>
    readonly [field: string]: unknown
  }
}

/**
 * A request outside the SDK, as `user`: for bodies the typed client would
 * refuse to encode, and for what the SDK would not show (the exact status, the
 * raw response text). A body is sent as JSON text, as given.
 */
export const rawRequest = Effect.fn("rawRequest")(function* (
  user: string,
  method: "GET" | "POST" | "PUT" | "DELETE",
  path: string,
  body?: string,
  headers: Readonly<Record<string, string>> = {}
) {
  const { baseUrl } = yield* Gateway
  const client = yield* HttpClient.HttpClient
  const request = HttpClientRequest.make(method)(`${baseUrl}${path}`).pipe(
    HttpClientRequest.setHeaders({ ...headers, "x-user-id": user })
  )
  const response = yield* client.execute(
    body === undefined ? request : HttpClientRequest.bodyText(request, body, "application/json")
  )
  const text = yield* response.text
  const parsed: RawResponse["body"] = text === "" ? {} : yield* Effect.try(() => JSON.parse(text))
  return { status: response.status, etag: response.headers.etag, text, body: parsed } satisfies RawResponse
}, Effect.provide(FetchHttpClient.layer))
