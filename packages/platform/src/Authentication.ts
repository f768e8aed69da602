import { BlockList, isIP } from "node:net"
import { Caller, CurrentCaller, Forbidden, RequiredScope, TooManyRequests } from "@dexmon/api"
import { UserId } from "@dexmon/domain"
import { redactUrl } from "@dexmon/observability"
import { deploymentProfile } from "@dexmon/ports"
import { Config, Context, Effect, Layer, Option, Redacted, Schema } from "effect"
import { HttpServerRequest, HttpServerResponse } from "effect/http"
import type { HttpApiEndpoint, HttpApiGroup } from "effect/http-api"
import { errors as JoseErrors, type JWTVerifyGetKey, jwtVerify } from "jose"
import { IssuerKeys, type IssuerKeysSettings, type IssuerKeysUnavailable } from "./IssuerKeys.ts"
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

/** 127.0.0.0/8 and ::1, also written IPv4-mapped (`::ffff:127.0.0.1`) or in full (`0:0:0:0:0:0:0:1`). */
const LOOPBACK = new BlockList()
LOOPBACK.addSubnet("127.0.0.0", 8, "ipv4")
LOOPBACK.addAddress("::1", "ipv6")

/**
 * Whether a listen address is reachable from this machine only. `0.0.0.0` and
 * `::` (every interface), a LAN address, an empty or unknown name are not:
 * whatever is not certainly loopback counts as reachable from elsewhere.
 */
export const isLoopback = (host: string): boolean => {
  if (host.toLowerCase() === "localhost") return true
  const family = isIP(host)
  if (family === 0) return false
  return LOOPBACK.check(host, family === 4 ? "ipv4" : "ipv6")
}

const AuthConfig = Config.all({
  issuer: Config.option(Config.String("AUTH_ISSUER")),
  audience: Config.option(Config.String("AUTH_AUDIENCE")),
  jwksUrl: Config.option(Config.String("AUTH_JWKS_URL")),
  clockSkewSeconds: Config.Int("AUTH_CLOCK_SKEW_SECONDS").pipe(Config.withDefault(30)),
  jwksCooldownSeconds: Config.Int("AUTH_JWKS_COOLDOWN_SECONDS").pipe(Config.withDefault(30)),
  jwksTimeoutSeconds: Config.Int("AUTH_JWKS_TIMEOUT_SECONDS").pipe(Config.withDefault(5)),
  jwksCacheSeconds: Config.Int("AUTH_JWKS_CACHE_SECONDS").pipe(Config.withDefault(600)),
  jwksMaxStaleSeconds: Config.Int("AUTH_JWKS_MAX_STALE_SECONDS").pipe(Config.withDefault(86_400)),
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

/**
 * 503 with `Retry-After`: the issuer's keys cannot be fetched, so nobody can
 * tell whether the token is good. Not 401, which tells a client to throw its
 * token away and sign the user in again.
 */
const keysUnavailable = (error: IssuerKeysUnavailable) =>
  HttpServerResponse.jsonUnsafe(
    {
      _tag: "ServiceUnavailable",
      message: "the token issuer's keys (JWKS) cannot be fetched, so the token cannot be checked; retry later"
    },
    { status: 503, headers: { "retry-after": String(error.retryAfterSeconds) } }
  )

/**
 * A token in a URL ends up in logs, proxies and browser history: `access_token`
 * in the query (in any case, percent-encoded or not) is refused even when a
 * header carries one too, and in development as well, so a client built against
 * the development caller does not learn a habit production refuses.
 */
const tokenInUrl = (url: string): boolean => {
  const query = url.indexOf("?")
  if (query === -1) return false
  for (const name of new URLSearchParams(url.slice(query + 1)).keys()) {
    if (name.toLowerCase() === "access_token") return true
  }
  return false
}
const TOKEN_IN_URL = "tokens in the URL are refused; send them in the Authorization header"

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
 * small clock skew. The subject is the user id. The keys come from
 * `IssuerKeys` (cached, refreshed, fetched again on an unknown key id at most
 * once per `AUTH_JWKS_COOLDOWN_SECONDS`); when they cannot be fetched the
 * answer is 503, never a 401 that would blame the token.
 */
const layerJwt = (settings: {
  readonly issuer: string
  readonly audience: string
  readonly clockSkewSeconds: number
  readonly keys: IssuerKeysSettings
}) =>
  Layer.effect(
    Caller,
    Effect.gen(function* () {
      const limiter = yield* RateLimiter
      const keys = yield* IssuerKeys
      yield* Effect.logInfo(
        `bearer tokens from ${settings.issuer} for ${settings.audience} (keys at ${redactUrl(settings.keys.jwksUrl)})`
      )
      const verify = (token: string, keySet: JWTVerifyGetKey) =>
        Effect.tryPromise({
          try: () =>
            jwtVerify(token, keySet, {
              issuer: settings.issuer,
              audience: settings.audience,
              algorithms: ALLOWED_ALGORITHMS,
              clockTolerance: settings.clockSkewSeconds,
              requiredClaims: ["exp", "sub"]
            }),
          catch: (error) => error
        })
      /** The verified payload, or why the token is refused (401); fails when the keys cannot be had (503). */
      const check = Effect.fnUntraced(function* (token: string) {
        const first = yield* verify(token, yield* keys.current).pipe(Effect.result)
        if (first._tag === "Success") return first
        if (!(first.failure instanceof JoseErrors.JWKSNoMatchingKey)) return first
        // A key id the cached set lacks: the issuer may have rotated keys since the last fetch.
        const refreshed = yield* keys.refreshForUnknownKey
        if (Option.isNone(refreshed)) return first
        return yield* verify(token, refreshed.value).pipe(Effect.result)
      })
      return Caller.of({
        bearer: (httpEffect, { credential, endpoint, group }) =>
          Effect.gen(function* () {
            const request = yield* HttpServerRequest.HttpServerRequest
            if (tokenInUrl(request.url)) return unauthorized(TOKEN_IN_URL)
            const token = Redacted.value(credential)
            if (token === "") return unauthorized("a bearer token is required (Authorization: Bearer <token>)")
            const verified = yield* check(token).pipe(Effect.result)
            if (verified._tag === "Failure") return keysUnavailable(verified.failure)
            if (verified.success._tag === "Failure") return unauthorized(describeRefusal(verified.success.failure))
            const payload = verified.success.success.payload
            const subject = payload.sub
            if (!isUserId(subject)) return unauthorized("the token's subject is not a valid user id")
            return yield* admit(
              httpEffect,
              { userId: subject, scopes: scopesOf(payload) },
              { endpoint, group },
              limiter
            )
          })
      })
    })
  ).pipe(Layer.provide(IssuerKeys.layer(settings.keys)))

/**
 * Security disabled: the caller is `X-User-Id` when present, otherwise the
 * development user, with every scope. Anyone who reaches the port can act as
 * anyone, so `CallerLive` only builds it while listening on loopback.
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
            if (tokenInUrl(request.url)) return unauthorized(TOKEN_IN_URL)
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
 * bearer tokens. Otherwise the development caller, which lets whoever reaches
 * the port act as any user (`X-User-Id`): only outside production and only
 * while `HOST` is loopback, whether asked for (`SECURITY_DISABLED=true`, with a
 * warning) or implied (no issuer, saying so); anything else stops start-up
 * with the reason.
 */
export const CallerLive = Layer.unwrap(
  Effect.gen(function* () {
    const config = yield* AuthConfig
    const production = (yield* deploymentProfile) === "production"
    const refuse = (message: string) => Effect.die(new Error(message))
    if (config.disabled) {
      if (!isLoopback(config.host)) {
        return yield* refuse(
          `SECURITY_DISABLED=true is refused with HOST=${config.host}: that address is reachable from other machines, ` +
            "and without authentication anyone reaching it could act as any user (X-User-Id). " +
            "Listen on loopback (HOST=127.0.0.1) for development, or set AUTH_ISSUER (with AUTH_AUDIENCE, AUTH_JWKS_URL)"
        )
      }
      if (production) return yield* refuse("SECURITY_DISABLED=true is refused under DEXMON_PROFILE=production")
      yield* Effect.logWarning(
        `SECURITY_DISABLED=true: requests are not authenticated; the caller is X-User-Id or the development user (listening on ${config.host} only)`
      )
      return layerDevelopment(config.devUser)
    }
    if (Option.isSome(config.issuer)) {
      if (Option.isNone(config.audience) || Option.isNone(config.jwksUrl)) {
        return yield* refuse("AUTH_ISSUER needs AUTH_AUDIENCE and AUTH_JWKS_URL")
      }
      const invalid = [
        config.jwksTimeoutSeconds < 1 && "AUTH_JWKS_TIMEOUT_SECONDS must be at least 1",
        config.jwksCooldownSeconds < 0 && "AUTH_JWKS_COOLDOWN_SECONDS must not be negative",
        config.jwksCacheSeconds < 0 && "AUTH_JWKS_CACHE_SECONDS must not be negative",
        config.jwksMaxStaleSeconds < config.jwksCacheSeconds &&
          "AUTH_JWKS_MAX_STALE_SECONDS must be at least AUTH_JWKS_CACHE_SECONDS"
      ].filter((message) => message !== false)
      if (invalid.length > 0) return yield* refuse(invalid.join("; "))
      return layerJwt({
        issuer: config.issuer.value,
        audience: config.audience.value,
        clockSkewSeconds: config.clockSkewSeconds,
        keys: {
          jwksUrl: config.jwksUrl.value,
          timeoutSeconds: config.jwksTimeoutSeconds,
          cooldownSeconds: config.jwksCooldownSeconds,
          cacheSeconds: config.jwksCacheSeconds,
          maxStaleSeconds: config.jwksMaxStaleSeconds
        }
      })
    }
    if (production)
      return yield* refuse("DEXMON_PROFILE=production needs AUTH_ISSUER (with AUTH_AUDIENCE, AUTH_JWKS_URL)")
    if (!isLoopback(config.host)) {
      return yield* refuse(
        `HOST=${config.host} is reachable from other machines: set AUTH_ISSUER (with AUTH_AUDIENCE, AUTH_JWKS_URL), ` +
          "or listen on loopback (HOST=127.0.0.1) for development"
      )
    }
    yield* Effect.logWarning(
      `no AUTH_ISSUER: security is disabled while listening on ${config.host} only; the caller is X-User-Id or ${config.devUser}`
    )
    return layerDevelopment(config.devUser)
  })
).pipe(Layer.provide(RateLimiter.layerConfig))
