import {
  NightscoutAuthentication,
  NightscoutCurrentCaller,
  ServiceUnavailable,
  TooManyRequests,
  Unauthorized
} from "@dexmon/api"
import { presentedDigest, type UserId } from "@dexmon/domain"
import { RateLimiter } from "@dexmon/platform"
import { NightscoutCredentialStore, type NightscoutCredentialStoreError, type NightscoutIdentity } from "@dexmon/ports"
import { Effect, Layer, Option } from "effect"
import { HttpEffect, HttpServerRequest, HttpServerResponse } from "effect/http"
import { bodyCredential, postedJson } from "./NightscoutBody.ts"
import { NightscoutTokens } from "./NightscoutTokens.ts"

/** How a request presented its credential, in the order Nightscout's clients are looked at. */
type Presented =
  | { readonly form: "bearer"; readonly value: string }
  | { readonly form: "api-secret" | "token" | "secret"; readonly value: string }

/**
 * The credential of a request that has none in its headers or query: a `secret` or `token` field of its JSON
 * body (see `bodyCredential`), for a request with a body. A body that cannot be read or parsed carries none (the
 * handler answers what is wrong with it, once the caller is known).
 */
const presentedInBody = Effect.gen(function* () {
  const request = yield* HttpServerRequest.HttpServerRequest
  if (request.method !== "POST" && request.method !== "PUT") return undefined
  const bytes = yield* request.arrayBuffer.pipe(Effect.option)
  if (Option.isNone(bytes)) return undefined
  const json = yield* postedJson(new Uint8Array(bytes.value)).pipe(Effect.option)
  return Option.isNone(json) ? undefined : bodyCredential(json.value)
})

/**
 * The credential a request carries: a bearer token, the `api-secret` header, `?token=` or `?secret=`, the first
 * present in that order. Only the first is looked at: a request that presents a wrong one is refused, whatever
 * else it carries.
 */
export const presentedCredential = (request: HttpServerRequest.HttpServerRequest): Presented | undefined => {
  const authorization = request.headers.authorization
  const bearer = authorization === undefined ? undefined : /^bearer\s+(\S+)\s*$/i.exec(authorization)?.[1]
  if (bearer !== undefined) return { form: "bearer", value: bearer }
  const apiSecret = request.headers["api-secret"]
  if (apiSecret !== undefined && apiSecret !== "") return { form: "api-secret", value: apiSecret.trim() }
  const query = request.url.indexOf("?")
  if (query === -1) return undefined
  const params = new URLSearchParams(request.url.slice(query + 1))
  for (const form of ["token", "secret"] as const) {
    const value = params.get(form)
    if (value !== null && value !== "") return { form, value }
  }
  return undefined
}

/** A credential store that failed mid-request: logged with its cause, answered 503 (nobody can tell). */
export const credentialStoreUnavailable = (doing: string) => (error: NightscoutCredentialStoreError) =>
  Effect.logError(`the Nightscout credential store failed while ${doing}`, error).pipe(
    Effect.andThen(Effect.fail(new ServiceUnavailable({ message: "the credential store is unavailable; retry later" })))
  )

/** The caller's rate limit, taken as DexMon's own API takes it: once spent, 429 with `Retry-After`. */
export const takeRateLimit = Effect.fnUntraced(function* (limiter: RateLimiter["Service"], userId: UserId) {
  const verdict = yield* limiter.take(userId)
  if (verdict.allowed) return
  yield* HttpEffect.appendPreResponseHandler((_request, response) =>
    Effect.succeed(HttpServerResponse.setHeader(response, "retry-after", String(verdict.retryAfterSeconds)))
  )
  return yield* new TooManyRequests({
    message: "rate limit exceeded; retry after the seconds in Retry-After",
    retry_after_seconds: verdict.retryAfterSeconds
  })
})

const REFUSED = "the credential is not valid: it is wrong, revoked, or of another DexMon deployment"

/**
 * Nightscout's authentication for DexMon's Nightscout endpoints: the presented credential is found by its
 * digest (a JWT by its signature, then its credential, so revoking the credential ends its JWTs), the caller's
 * rate limit is taken as for DexMon's own API, and the owner and role are provided as `NightscoutCurrentCaller`.
 * Every response says `Accept-Encoding: gzip`: xDrip+ compresses its uploads only once it has seen that.
 */
export const NightscoutAuthenticationLive = Layer.effect(
  NightscoutAuthentication,
  Effect.gen(function* () {
    const store = yield* NightscoutCredentialStore
    const tokens = yield* NightscoutTokens
    const limiter = yield* RateLimiter
    const storeUnavailable = credentialStoreUnavailable("authenticating")

    /** The identity a JWT stands for, while its credential still exists. */
    const identityOfJwt = Effect.fnUntraced(function* (token: string) {
      const claims = yield* tokens.verify(token)
      if (Option.isNone(claims)) return Option.none<NightscoutIdentity>()
      const credentials = yield* store.list(claims.value.userId)
      const credential = credentials.find((each) => each.id === claims.value.credentialId)
      return credential === undefined
        ? Option.none<NightscoutIdentity>()
        : Option.some<NightscoutIdentity>({
            credential_id: credential.id,
            user_id: credential.user_id,
            kind: credential.kind,
            role: credential.role
          })
    })

    return NightscoutAuthentication.of((httpEffect) =>
      Effect.gen(function* () {
        yield* HttpEffect.appendPreResponseHandler((_request, response) =>
          Effect.succeed(HttpServerResponse.setHeader(response, "accept-encoding", "gzip"))
        )
        const request = yield* HttpServerRequest.HttpServerRequest
        const presented = presentedCredential(request) ?? (yield* presentedInBody)
        if (presented === undefined) {
          return yield* new Unauthorized({
            message:
              "a Nightscout credential is required: the api-secret header (SHA-1 of the API secret), ?token=, ?secret=, a token or secret field of the body, or a bearer JWT"
          })
        }
        // A bearer that is not one of our JWTs may be an access token itself, as Nightscout also takes.
        const jwtIdentity =
          presented.form === "bearer"
            ? yield* identityOfJwt(presented.value).pipe(
                Effect.catchTag("NightscoutCredentialStoreError", storeUnavailable)
              )
            : Option.none<NightscoutIdentity>()
        const identity = Option.isSome(jwtIdentity)
          ? jwtIdentity
          : yield* store
              .authenticate(presentedDigest(presented.value))
              .pipe(Effect.catchTag("NightscoutCredentialStoreError", storeUnavailable))
        if (Option.isNone(identity)) return yield* new Unauthorized({ message: REFUSED })
        yield* takeRateLimit(limiter, identity.value.user_id)
        yield* Effect.annotateCurrentSpan({ "dexmon.nightscout.credential": identity.value.credential_id })
        return yield* Effect.provideService(httpEffect, NightscoutCurrentCaller, {
          userId: identity.value.user_id,
          role: identity.value.role,
          credentialId: identity.value.credential_id
        })
      })
    )
  })
)
