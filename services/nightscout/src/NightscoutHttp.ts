import { DexMonApi, NightscoutCurrentCaller, Unauthorized, ValidationError } from "@dexmon/api"
import { presentedDigest } from "@dexmon/domain"
import { RateLimiter } from "@dexmon/platform"
import { NightscoutCredentialStore } from "@dexmon/ports"
import { Ingestion } from "@dexmon/receiver"
import { Effect, Layer, Option } from "effect"
import { HttpIncomingMessage, HttpServerRequest } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import { credentialStoreUnavailable, NightscoutAuthenticationLive, takeRateLimit } from "./NightscoutAuthentication.ts"
import { decodeEntriesBody, NightscoutEntries } from "./NightscoutEntries.ts"
import { NightscoutTokens } from "./NightscoutTokens.ts"

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

/** The Nightscout endpoints: the HTTP edge of `NightscoutEntries`. */
const NightscoutEndpoints = HttpApiBuilder.group(
  DexMonApi,
  "nightscout",
  Effect.fn(function* (handlers) {
    const entries = yield* NightscoutEntries
    const postEntries = Effect.fn("NightscoutHttp.postEntries")(function* ({
      payload
    }: {
      readonly payload: Uint8Array
    }) {
      const caller = yield* requireUploader
      const request = yield* HttpServerRequest.HttpServerRequest
      const maxBytes = Number(yield* HttpIncomingMessage.MaxBodySize)
      const body = decodeEntriesBody(payload, request.headers["content-encoding"], maxBytes)
      if (body._tag === "Invalid") {
        return yield* ValidationError.fromIssues("payload", [{ path: "", message: body.message }])
      }
      return yield* entries.post(caller.userId, body.value)
    })
    return handlers
      .handle("postEntries", postEntries)
      .handle("postEntriesJson", postEntries)
      .handle("experimentsTest", () => Effect.as(requireUploader, { status: "ok" as const }))
  })
).pipe(Layer.provide(NightscoutEntries.layer.pipe(Layer.provide(Ingestion.layer))))

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
          .authenticate(presentedDigest(params.token))
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
