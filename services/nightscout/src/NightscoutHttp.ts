import { createHash } from "node:crypto"
import { DexMonApi, NightscoutCurrentCaller, NotFound, Unauthorized, ValidationError } from "@dexmon/api"
import { presentedDigest } from "@dexmon/domain"
import { UserAlertSettings } from "@dexmon/gateway"
import { RateLimiter } from "@dexmon/platform"
import { NightscoutCredentialStore } from "@dexmon/ports"
import { Ingestion } from "@dexmon/receiver"
import { Clock, Effect, Layer, Option } from "effect"
import { HttpServerRequest, HttpServerResponse } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import { type EntriesSpec, entriesSpecFor, entriesSpecOf, entriesText, parseEntriesFind } from "./EntriesOut.ts"
import { credentialStoreUnavailable, NightscoutAuthenticationLive, takeRateLimit } from "./NightscoutAuthentication.ts"
import { postedJson, withoutCredentialFields } from "./NightscoutBody.ts"
import { NightscoutDeviceStatuses } from "./NightscoutDeviceStatuses.ts"
import { NightscoutEntries } from "./NightscoutEntries.ts"
import { NightscoutReads } from "./NightscoutReads.ts"
import { NightscoutTokens } from "./NightscoutTokens.ts"

/** How many entries a read answers when it does not say: Nightscout's default. */
const DEFAULT_COUNT = 10

/** Only a credential that may post: Nightscout answers a read-only one 401 too, and its clients expect that. */
const requireUploader = Effect.gen(function* () {
  const caller = yield* NightscoutCurrentCaller
  if (caller.role !== "uploader") {
    return yield* new Unauthorized({
      message: "this credential may only read: posting needs an api_secret or an uploader token"
    })
  }
  return caller
})

/**
 * Whether the client's copy is current: its `If-None-Match` names the ETag, or (without one) its
 * `If-Modified-Since` is no earlier than the second of the last change. An `If-Modified-Since` in the future is
 * ignored (a client clock ahead would otherwise hold every change back).
 */
export const notModified = (
  headers: Readonly<Record<string, string | undefined>>,
  etag: string,
  lastModified: number | undefined,
  now: number
): boolean => {
  const match = headers["if-none-match"]
  if (match !== undefined) return match.split(",").some((tag) => tag.trim().replace(/^W\//, "") === etag)
  const since = Date.parse(headers["if-modified-since"] ?? "")
  return lastModified !== undefined && Number.isFinite(since) && since <= now && lastModified < since + 1000
}

/** The JSON of a posted body without its credential fields (see `withoutCredentialFields`). */
const jsonBody = (payload: Uint8Array) => Effect.map(postedJson(payload), withoutCredentialFields)

/** The Nightscout endpoints: the HTTP edge of `NightscoutEntries` and `NightscoutReads`. */
const NightscoutEndpoints = HttpApiBuilder.group(
  DexMonApi,
  "nightscout",
  Effect.fn(function* (handlers) {
    const entries = yield* NightscoutEntries
    const reads = yield* NightscoutReads
    const deviceStatuses = yield* NightscoutDeviceStatuses
    const latestDeviceStatuses = Effect.fn("NightscoutHttp.deviceStatus")(function* ({
      query
    }: {
      readonly query: { readonly count?: number | undefined }
    }) {
      const caller = yield* NightscoutCurrentCaller
      return yield* deviceStatuses.latest(caller.userId, query.count ?? DEFAULT_COUNT)
    })
    const postEntries = Effect.fn("NightscoutHttp.postEntries")(function* ({
      payload
    }: {
      readonly payload: Uint8Array
    }) {
      const caller = yield* requireUploader
      return yield* entries.post(caller.userId, yield* jsonBody(payload))
    })
    const serveEntries = (spec: EntriesSpec) =>
      Effect.fn("NightscoutHttp.entries")(function* ({
        query
      }: {
        readonly query: { readonly count?: number | undefined }
      }) {
        const caller = yield* NightscoutCurrentCaller
        const request = yield* HttpServerRequest.HttpServerRequest
        const now = yield* Clock.currentTimeMillis
        const search = request.url.indexOf("?")
        const find = parseEntriesFind(
          new URLSearchParams(search === -1 ? "" : request.url.slice(search + 1)),
          spec,
          now
        )
        if (find._tag === "Invalid") return yield* ValidationError.fromIssues("query", find.issues)
        const { entries, lastModified } = yield* reads.entries(
          caller.userId,
          find.filter,
          spec.current ? 1 : (query.count ?? DEFAULT_COUNT)
        )
        // The ETag names exactly what is served (trends and deltas included); Last-Modified the newest change
        // among the readings read, to the second, as HTTP dates go.
        const etag = `"${createHash("sha256").update(JSON.stringify(entries)).digest("hex").slice(0, 24)}"`
        const headers: Record<string, string> = {
          etag,
          ...(lastModified === undefined ? {} : { "last-modified": new Date(lastModified).toUTCString() })
        }
        if (notModified(request.headers, etag, lastModified, now)) {
          return HttpServerResponse.empty({ status: 304, headers })
        }
        switch (spec.format) {
          case "json":
            return HttpServerResponse.jsonUnsafe(entries, { headers })
          case "csv":
            return HttpServerResponse.text(entriesText(entries, ","), { contentType: "text/csv", headers })
          case "tsv":
            return HttpServerResponse.text(entriesText(entries, "\t"), {
              contentType: "text/tab-separated-values",
              headers
            })
          case "txt":
            return HttpServerResponse.text(entriesText(entries, "\t"), { contentType: "text/plain", headers })
        }
      })
    return handlers
      .handle("entries", serveEntries(entriesSpecFor("json")))
      .handle("entriesJson", serveEntries(entriesSpecFor("json")))
      .handle("entriesCsv", serveEntries(entriesSpecFor("csv")))
      .handle("entriesTsv", serveEntries(entriesSpecFor("tsv")))
      .handle("entriesTxt", serveEntries(entriesSpecFor("txt")))
      .handle(
        "entriesSpec",
        Effect.fn("NightscoutHttp.entriesSpec")(function* ({ params, query }) {
          const spec = entriesSpecOf(params.spec)
          if (spec === undefined) {
            return yield* new NotFound({
              message:
                "DexMon serves /entries/sgv, /entries/mbg and /entries/current (each optionally .json, .csv, .tsv or .txt)"
            })
          }
          return yield* serveEntries(spec)({ query })
        })
      )
      .handle(
        "status",
        Effect.fn("NightscoutHttp.status")(function* () {
          const caller = yield* NightscoutCurrentCaller
          return yield* reads.status(caller.userId)
        })
      )
      .handle("postEntries", postEntries)
      .handle(
        "postDeviceStatus",
        Effect.fn("NightscoutHttp.postDeviceStatus")(function* ({ payload }) {
          const caller = yield* requireUploader
          return yield* deviceStatuses.post(caller.userId, yield* jsonBody(payload))
        })
      )
      .handle("deviceStatus", latestDeviceStatuses)
      .handle("deviceStatusJson", latestDeviceStatuses)
      .handle("postEntriesJson", postEntries)
      .handle("experimentsTest", () => Effect.as(requireUploader, { status: "ok" as const }))
  })
).pipe(
  Layer.provide(
    Layer.mergeAll(
      NightscoutEntries.layer.pipe(Layer.provide(Ingestion.layer)),
      NightscoutReads.layer.pipe(Layer.provide(UserAlertSettings.layer)),
      NightscoutDeviceStatuses.layer
    )
  )
)

/**
 * `/api/v2/authorization/request/<token>`: the access token in the path (never logged or traced: the request
 * span is off for this path) for an 8-hour JWT, as Nightscout's followers ask for one.
 */
const NightscoutAuthorizationEndpoints = HttpApiBuilder.group(
  DexMonApi,
  "nightscoutAuthorization",
  Effect.fn(function* (handlers) {
    const store = yield* NightscoutCredentialStore
    const tokens = yield* NightscoutTokens
    const limiter = yield* RateLimiter
    return handlers.handle(
      "request",
      Effect.fn("NightscoutHttp.authorizationRequest")(function* ({ params }) {
        const identity = yield* store
          // Nightguard asks for `request/token=<token>`.
          .authenticate(presentedDigest(params.token.replace(/^token=/, "")))
          .pipe(Effect.catchTag("NightscoutCredentialStoreError", credentialStoreUnavailable("exchanging a token")))
        if (Option.isNone(identity)) {
          return yield* new Unauthorized({ message: "the access token is not valid: it is wrong or revoked" })
        }
        yield* takeRateLimit(limiter, identity.value.user_id)
        const { role } = identity.value
        const issued = yield* tokens.issue({
          userId: identity.value.user_id,
          credentialId: identity.value.credential_id,
          role
        })
        return {
          token: issued.token,
          sub: role,
          permissionGroups: [role === "uploader" ? ["api:*:read", "api:entries:create"] : ["api:*:read"]],
          iat: issued.iat,
          exp: issued.exp
        }
      })
    )
  })
)

/** Every Nightscout endpoint with the authentication and token signing they need. */
export const NightscoutHttp = Layer.mergeAll(NightscoutEndpoints, NightscoutAuthorizationEndpoints).pipe(
  Layer.provideMerge(NightscoutAuthenticationLive),
  Layer.provide(Layer.mergeAll(NightscoutTokens.layerConfig, RateLimiter.layerConfig))
)
