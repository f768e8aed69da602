import { redactUrl } from "@dexmon/observability"
import { Clock, Context, Effect, Layer, Option, Ref, Schema, Semaphore } from "effect"
import { createRemoteJWKSet, errors as JoseErrors, type JWTVerifyGetKey } from "jose"

/** The issuer's key set cannot be used: never fetched, or its last fetch is older than the stale bound. */
export class IssuerKeysUnavailable extends Schema.TaggedError<IssuerKeysUnavailable>()("IssuerKeysUnavailable", {
  /** Why the last fetch failed, safe to log (no token content). */
  reason: Schema.String,
  /** Whole seconds until the next fetch may be tried. */
  retryAfterSeconds: Schema.Int
}) {}

export interface IssuerKeysSettings {
  readonly jwksUrl: string
  /** A fetch that has not answered within this is given up (connect, headers and body). */
  readonly timeoutSeconds: number
  /** At most one fetch per this many seconds, whatever asks for it (unknown key ids, a stale set, a failed fetch). */
  readonly cooldownSeconds: number
  /** The fetched set is refreshed once it is this old. */
  readonly cacheSeconds: number
  /** While refreshes fail, the last fetched set keeps verifying tokens until it is this old. */
  readonly maxStaleSeconds: number
}

interface State {
  /** When the last successful fetch ended. */
  readonly fetchedAt: number | undefined
  /** When the last fetch, successful or not, ended. */
  readonly attemptedAt: number | undefined
  /** Why the last fetch failed; undefined when it succeeded. */
  readonly failure: string | undefined
}

/** Why a fetch of the key set failed, in words for the log. */
const describeFetchFailure =
  (timeoutSeconds: number) =>
  (error: unknown): string => {
    if (error instanceof JoseErrors.JWKSTimeout) return `no answer within ${timeoutSeconds} s`
    if (error instanceof JoseErrors.JOSEError) return error.message
    if (error instanceof Error) {
      const cause = error.cause
      const code = cause instanceof Error && "code" in cause ? ` (${String(cause.code)})` : ""
      return `${error.message}${code}`
    }
    return String(error)
  }

/**
 * The issuer's signing keys (its JWKS), fetched and cached here rather than by
 * jose's remote key set alone, because jose answers every failure the same
 * way: once its cache is older than its max age it fetches before verifying
 * and fails every token while the issuer is down, and it fails a token whose
 * key id it lacks as it fails a forged one. Here:
 *
 * - a set that has been fetched keeps verifying tokens of the key ids it holds
 *   without asking the issuer; once `cacheSeconds` old it is refreshed in the
 *   background, and while refreshes fail it keeps verifying until
 *   `maxStaleSeconds` old (stale-while-error), then `IssuerKeysUnavailable`;
 * - a set never fetched, or a key id the set lacks, needs a fetch; when that
 *   fetch fails the answer is `IssuerKeysUnavailable` (the caller says 503),
 *   never "no such key" (401), since nobody can tell;
 * - at most one fetch per `cooldownSeconds` (shared by concurrent callers), so
 *   tokens with made-up key ids cannot hammer the issuer, nor requests pile up
 *   behind a hanging one; every fetch gives up after `timeoutSeconds`.
 *
 * jose still does the fetching (bounded by `timeoutDuration`, no redirects) and
 * the key selection; its own refresh rules are switched off (infinite max age
 * and cooldown) so only the rules above decide when to fetch.
 */
export class IssuerKeys extends Context.Service<
  IssuerKeys,
  {
    /** The key set to verify a token with; fails when there is none usable. */
    readonly current: Effect.Effect<JWTVerifyGetKey, IssuerKeysUnavailable>
    /**
     * A token named a key id the set lacks: the set fetched again (`Some`), or
     * `None` when it was fetched successfully within the cooldown, so the issuer
     * does not publish that key. Fails when the issuer cannot be asked.
     */
    readonly refreshForUnknownKey: Effect.Effect<Option.Option<JWTVerifyGetKey>, IssuerKeysUnavailable>
  }
>()("dexmon/platform/IssuerKeys") {
  static readonly make = Effect.fnUntraced(function* (settings: IssuerKeysSettings) {
    const remote = createRemoteJWKSet(new URL(settings.jwksUrl), {
      timeoutDuration: settings.timeoutSeconds * 1000,
      cooldownDuration: Number.POSITIVE_INFINITY,
      cacheMaxAge: Number.POSITIVE_INFINITY
    })
    const cooldownMillis = settings.cooldownSeconds * 1000
    const state = yield* Ref.make<State>({ fetchedAt: undefined, attemptedAt: undefined, failure: undefined })
    const fetching = yield* Semaphore.make(1)
    const scope = yield* Effect.scope
    const describe = describeFetchFailure(settings.timeoutSeconds)
    // The URL may carry a credential of the issuer's (a query key): logged redacted.
    const where = `JWKS at ${redactUrl(settings.jwksUrl)}`

    const due = (known: State, now: number) =>
      known.attemptedAt === undefined || now - known.attemptedAt >= cooldownMillis

    const unavailable = (known: State, now: number) =>
      new IssuerKeysUnavailable({
        reason: known.failure ?? "the key set has not been fetched",
        retryAfterSeconds: Math.max(1, Math.ceil(((known.attemptedAt ?? now) + cooldownMillis - now) / 1000))
      })

    /**
     * One fetch for every caller that asked at or before `asked`, run holding
     * `fetching`: callers queue behind a fetch in flight, and one that ended
     * after they asked answers for them too, so a hanging issuer holds each
     * request for one timeout at most.
     */
    const fetchHolding = (asked: number) =>
      Effect.gen(function* () {
        const known = yield* Ref.get(state)
        if (known.attemptedAt !== undefined && known.attemptedAt >= asked) return known
        const outcome = yield* Effect.tryPromise({ try: () => remote.reload(), catch: describe }).pipe(Effect.result)
        const now = yield* Clock.currentTimeMillis
        const next: State =
          outcome._tag === "Success"
            ? { fetchedAt: now, attemptedAt: now, failure: undefined }
            : { ...known, attemptedAt: now, failure: outcome.failure }
        yield* Ref.set(state, next)
        if (next.failure !== undefined) {
          const held =
            next.fetchedAt === undefined
              ? "no key set was ever fetched, so bearer tokens are answered 503"
              : `the set fetched ${Math.round((now - next.fetchedAt) / 1000)} s ago verifies tokens until it is ${settings.maxStaleSeconds} s old`
          yield* Effect.logWarning(`the issuer's keys (${where}) cannot be fetched: ${next.failure}; ${held}`)
        } else if (known.failure !== undefined) {
          yield* Effect.logInfo(`the issuer's keys (${where}) are fetched again`)
        }
        return next
      })
    const fetchFor = (asked: number) => fetching.withPermit(fetchHolding(asked))

    /** Fetched recently enough to verify tokens with. */
    const usable = (known: State, now: number) =>
      known.fetchedAt !== undefined && now - known.fetchedAt < settings.maxStaleSeconds * 1000

    const current = Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      let known = yield* Ref.get(state)
      if (!usable(known, now)) {
        if (due(known, now)) known = yield* fetchFor(now)
        if (!usable(known, now)) return yield* unavailable(known, now)
        return remote
      }
      if (now - (known.fetchedAt ?? now) >= settings.cacheSeconds * 1000 && due(known, now)) {
        // The request goes on with the set it has; a refresh already in flight is not doubled.
        yield* Effect.forkIn(fetching.withPermitsIfAvailable(1)(fetchHolding(now)), scope)
      }
      return remote
    })

    const refreshForUnknownKey = Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      let known = yield* Ref.get(state)
      if (!due(known, now)) {
        if (known.failure === undefined) return Option.none()
        return yield* unavailable(known, now)
      }
      known = yield* fetchFor(now)
      if (known.failure !== undefined) return yield* unavailable(known, now)
      return Option.some<JWTVerifyGetKey>(remote)
    })

    // Fetched at start, so an unreachable issuer shows in the log before the first request, and the first
    // request does not wait for the fetch; readiness does not wait for it either.
    yield* Effect.forkIn(
      Effect.flatMap(Clock.currentTimeMillis, (now) => fetchFor(now)),
      scope
    )
    return IssuerKeys.of({ current, refreshForUnknownKey })
  })

  static readonly layer = (settings: IssuerKeysSettings) => Layer.effect(IssuerKeys, IssuerKeys.make(settings))
}
