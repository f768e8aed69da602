import { Clock, Config, Context, Effect, Layer } from "effect"

export interface RateVerdict {
  readonly allowed: boolean
  /** When not allowed: whole seconds until one request will be. */
  readonly retryAfterSeconds: number
}

interface Bucket {
  tokens: number
  updatedAt: number
}

/** Buckets idle this long are full again and forgotten, so memory follows the active users. */
const IDLE_MILLIS = 10 * 60_000

/**
 * A token bucket per user: `DEXMON_RATE_LIMIT_PER_SECOND` requests per second
 * on average, bursts of up to `DEXMON_RATE_LIMIT_BURST`. Each process limits
 * on its own, so N replicas allow N times the rate. `0` turns the limit off.
 */
export class RateLimiter extends Context.Service<
  RateLimiter,
  { readonly take: (key: string) => Effect.Effect<RateVerdict> }
>()("dexmon/platform/RateLimiter") {
  static readonly make = (perSecond: number, burst: number) =>
    Effect.sync(() => {
      const buckets = new Map<string, Bucket>()
      let lastSweep = 0
      const sweep = (now: number) => {
        if (now - lastSweep < IDLE_MILLIS) return
        lastSweep = now
        for (const [key, bucket] of buckets) if (now - bucket.updatedAt > IDLE_MILLIS) buckets.delete(key)
      }
      const take = (key: string) =>
        Effect.map(Clock.currentTimeMillis, (now): RateVerdict => {
          if (perSecond <= 0) return { allowed: true, retryAfterSeconds: 0 }
          sweep(now)
          const bucket = buckets.get(key) ?? { tokens: burst, updatedAt: now }
          bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.updatedAt) / 1000) * perSecond)
          bucket.updatedAt = now
          buckets.set(key, bucket)
          if (bucket.tokens >= 1) {
            bucket.tokens -= 1
            return { allowed: true, retryAfterSeconds: 0 }
          }
          return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / perSecond)) }
        })
      return RateLimiter.of({ take })
    })

  static readonly layerConfig = Layer.effect(
    RateLimiter,
    Effect.gen(function* () {
      const perSecond = yield* Config.Number("DEXMON_RATE_LIMIT_PER_SECOND").pipe(Config.withDefault(20))
      const burst = yield* Config.Int("DEXMON_RATE_LIMIT_BURST").pipe(Config.withDefault(200))
      return yield* RateLimiter.make(perSecond, burst)
    })
  )
}
