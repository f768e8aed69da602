import { Caller, CurrentCaller, Forbidden, RequiredScope, TooManyRequests } from "@dexmon/api"
import { UserId } from "@dexmon/domain"
import { deploymentProfile } from "@dexmon/ports"
import { Config, Context, Effect, Layer, Option, Redacted, Schema } from "effect"
import { HttpServerRequest, HttpServerResponse } from "effect/http"
import type { HttpApiEndpoint, HttpApiGroup } from "effect/http-api"
import { createRemoteJWKSet, errors as JoseErrors, jwtVerify } from "jose"
import { RateLimiter } from "./RateLimiter.ts"

const isUserId = Schema.is(UserId)

/** Asymmetric algorithms only: `none`, and HMAC (which a public key could be abused to sign), are refused. */
export const ALLOWED_ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA"
]

/** Every scope, for the development caller. */
const ALL_SCOPES: ReadonlySet<string> = new Set(["glucose:write", "glucose:read", "alerts:read", "alerts:write"])
const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"])

const AuthConfig = Config.all({
  issuer: Config.option(Config.String("AUTH_ISSUER")),
  audience: Config.option(Config.String("AUTH_AUDIENCE")),
  jwksUrl: Config.option(Config.String("AUTH_JWKS_URL")),
  clockSkewSeconds: Config.Int("AUTH_CLOCK_SKEW_SECONDS").pipe(Config.withDefault(30)),
  jwksCooldownSeconds: Config.Int("AUTH_JWKS_COOLDOWN_SECONDS").pipe(Config.withDefault(30)),
  disabled: Config.Boolean("SECURITY_DISABLED").pipe(Config.withDefault(false)),
  host: Config.String("HOST").pipe(Config.withDefault("127.0.0.1")),
  devUser: Config.String("DEXMON_DEV_USER_ID").pipe(Config.withDefault("dev-user"))
})

/** 401 with `WWW-Authenticate` (RFC 6750), and the body the typed client decodes as `Unauthorized`. */
const unauthorized = (message: string) =>
  HttpServerResponse.jsonUnsafe(
    { _tag: "Unauthorized", message },
    {
      status: 401,
      headers: { "www-authenticate": `Bearer realm="dexmon", error="invalid_token"` }
    }
  )

/** Scopes from the standard `scope` claim (space-separated) or the `scp` array some issuers use. */
const scopesOf = (payload: Record<string, unknown>): ReadonlySet<string> => {
  const scopes = new Set<string>()
  if (typeof payload.scope === "string") for (const scope of payload.scope.split(" ")) if (scope) scopes.add(scope)
  if (Array.isArray(payload.scp)) for (const scope of payload.scp) if (typeof scope === "string") scopes.add(scope)
  return scopes
}

/** Why a token was refused, in words safe to return (no token content). */
const describeRefusal = (error: unknown): string => {
  if (error instanceof JoseErrors.JWTExpired) return "the token has expired"
  if (error instanceof JoseErrors.JWTClaimValidationFailed) {
    return error.claim === "nbf" ? "the token is not valid yet" : `the token's ${error.claim} claim is not accepted`
  }
  if (error instanceof JoseErrors.JOSEAlgNotAllowed) return "the token's signing algorithm is not accepted"
  if (error instanceof JoseErrors.JWKSNoMatchingKey) return "the token is signed with a key the issuer does not publish"
  if (error instanceof JoseErrors.JWSSignatureVerificationFailed) return "the token's signature does not verify"
  return "the bearer token is not a valid signed JWT"
}

/**
 * What every request goes through once its caller is known: the scope its
 * endpoint requires (an annotation of the endpoint, else of its group, so a
 * group of reads may hold one write), then the caller's rate limit
 * (429 with `Retry-After`), then the endpoint with `CurrentCaller` provided.
 */
const admit = <E, R>(
  httpEffect: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>,
  caller: CurrentCaller["Service"],
  route: { readonly endpoint: HttpApiEndpoint.Top; readonly group: HttpApiGroup.Top },
  limiter: RateLimiter["Service"]
) =>
  Effect.gen(function* () {
    const required = Option.orElse(Context.getOption(route.endpoint.annotations, RequiredScope), () =>
      Context.getOption(route.group.annotations, RequiredScope)
    )
    if (Option.isSome(required) && !caller.scopes.has(required.value)) {
      return yield* new Forbidden({ message: `the token does not grant the scope ${required.value}` })
    }
    const verdict = yield* limiter.take(caller.userId)
    if (!verdict.allowed) {
      const refusal = new TooManyRequests({
        message: "rate limit exceeded; retry after the seconds in Retry-After",
        retry_after_seconds: verdict.retryAfterSeconds
      })
      return HttpServerResponse.jsonUnsafe(
        { _tag: refusal._tag, message: refusal.message, retry_after_seconds: refusal.retry_after_seconds },
        { status: 429, headers: { "retry-after": String(verdict.retryAfterSeconds) } }
      )
    }
    return yield* Effect.provideService(httpEffect, CurrentCaller, caller)
  })

/**
 * OAuth2 bearer tokens checked against the issuer's JWKS: signature with an
 * allowed asymmetric algorithm, issuer, audience, expiry and not-before with a
 * small clock skew. Keys are cached and fetched again when a token names an
 * unknown key id (jose's remote key set, at most once per
 * `AUTH_JWKS_COOLDOWN_SECONDS`, so unknown key ids cannot hammer the issuer).
 * The subject is the user id.
 */
const layerJwt = (settings: {
  issuer: string
  audience: string
  jwksUrl: string
  clockSkewSeconds: number
  jwksCooldownSeconds: number
}) =>
  Layer.effect(
    Caller,
    Effect.gen(function* () {
      const limiter = yield* RateLimiter
      const keys = createRemoteJWKSet(new URL(settings.jwksUrl), {
        cooldownDuration: settings.jwksCooldownSeconds * 1000,
        cacheMaxAge: 600_000
      })
      yield* Effect.logInfo(
        `bearer tokens from ${settings.issuer} for ${settings.audience} (keys at ${settings.jwksUrl})`
      )
      return Caller.of({
        bearer: (httpEffect, { credential, endpoint, group }) =>
          Effect.gen(function* () {
            const request = yield* HttpServerRequest.HttpServerRequest
            // A token in a URL ends up in logs and browser history: refused even when a header carries one too.
            if (/[?&]access_token=/.test(request.url)) {
              return unauthorized("tokens in the URL are refused; send them in the Authorization header")
            }
            const token = Redacted.value(credential)
            if (token === "") return unauthorized("a bearer token is required (Authorization: Bearer <token>)")
            const verified = yield* Effect.tryPromise({
              try: () =>
                jwtVerify(token, keys, {
                  issuer: settings.issuer,
                  audience: settings.audience,
                  algorithms: ALLOWED_ALGORITHMS,
                  clockTolerance: settings.clockSkewSeconds,
                  requiredClaims: ["exp", "sub"]
                }),
              catch: describeRefusal
            }).pipe(Effect.result)
            if (verified._tag === "Failure") return unauthorized(verified.failure)
            const subject = verified.success.payload.sub
            if (!isUserId(subject)) return unauthorized("the token's subject is not a valid user id")
            return yield* admit(
              httpEffect,
              { userId: subject, scopes: scopesOf(verified.success.payload) },
              { endpoint, group },
              limiter
            )
          })
      })
    })
  )

/**
 * Security disabled: the caller is `X-User-Id` when present, otherwise the
 * development user, with every scope. Only for development on one machine.
 */
const layerDevelopment = (devUser: string) =>
  Layer.effect(
    Caller,
    Effect.gen(function* () {
      const limiter = yield* RateLimiter
      return Caller.of({
        bearer: (httpEffect, { endpoint, group }) =>
          Effect.gen(function* () {
            const request = yield* HttpServerRequest.HttpServerRequest
            const userId = request.headers["x-user-id"] ?? devUser
            if (!isUserId(userId)) {
              return unauthorized("X-User-Id must be 1 to 128 characters of A-Z, a-z, 0-9, . _ @ : | -")
            }
            return yield* admit(httpEffect, { userId, scopes: ALL_SCOPES }, { endpoint, group }, limiter)
          })
      })
    })
  )

/**
 * The caller middleware the configuration asks for. With `AUTH_ISSUER` set:
 * bearer tokens. `SECURITY_DISABLED=true`: the development caller, with a
 * warning. Neither: the development caller only while listening on loopback
 * outside production, and saying so; otherwise start-up stops.
 */
export const CallerLive = Layer.unwrap(
  Effect.gen(function* () {
    const config = yield* AuthConfig
    const production = (yield* deploymentProfile) === "production"
    const refuse = (message: string) => Effect.die(new Error(message))
    if (config.disabled) {
      if (production) return yield* refuse("SECURITY_DISABLED=true is refused under DEXMON_PROFILE=production")
      yield* Effect.logWarning(
        "SECURITY_DISABLED=true: requests are not authenticated; the caller is X-User-Id or the development user"
      )
      return layerDevelopment(config.devUser)
    }
    if (Option.isSome(config.issuer)) {
      if (Option.isNone(config.audience) || Option.isNone(config.jwksUrl)) {
        return yield* refuse("AUTH_ISSUER needs AUTH_AUDIENCE and AUTH_JWKS_URL")
      }
      return layerJwt({
        issuer: config.issuer.value,
        audience: config.audience.value,
        jwksUrl: config.jwksUrl.value,
        clockSkewSeconds: config.clockSkewSeconds,
        jwksCooldownSeconds: config.jwksCooldownSeconds
      })
    }
    if (production)
      return yield* refuse("DEXMON_PROFILE=production needs AUTH_ISSUER (with AUTH_AUDIENCE, AUTH_JWKS_URL)")
    if (!LOOPBACK.has(config.host)) {
      return yield* refuse(
        `HOST=${config.host} is reachable from other machines: set AUTH_ISSUER, or SECURITY_DISABLED=true`
      )
    }
    yield* Effect.logWarning(
      `no AUTH_ISSUER: security is disabled while listening on ${config.host} only; the caller is X-User-Id or ${config.devUser}`
    )
    return layerDevelopment(config.devUser)
  })
).pipe(Layer.provide(RateLimiter.layerConfig))
