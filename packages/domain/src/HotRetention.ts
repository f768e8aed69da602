import { Config, Context, Effect, Layer } from "effect"

const UNIT_MILLIS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const

/** Parses `90d`, `12h`, `30m` or `45s` to milliseconds. */
export const parseRetention = (text: string): number | undefined => {
  const match = /^(\d+)([smhd])$/.exec(text.trim())
  if (match === null) return undefined
  const millis = Number(match[1]) * UNIT_MILLIS[match[2] as keyof typeof UNIT_MILLIS]
  return millis > 0 ? millis : undefined
}

/**
 * How long readings stay in the hot store (`DEXMON_HOT_RETENTION`, default
 * `90d`). The receiver refuses readings older than this; the archiver moves
 * older ones to the archive store.
 */
export class HotRetention extends Context.Service<HotRetention, { readonly millis: number }>()(
  "dexmon/domain/HotRetention"
) {
  static readonly layerConfig = Layer.effect(
    HotRetention,
    Effect.gen(function* () {
      const text = yield* Config.String("DEXMON_HOT_RETENTION").pipe(Config.withDefault("90d"))
      const millis = parseRetention(text)
      if (millis === undefined) {
        return yield* Effect.die(new Error(`DEXMON_HOT_RETENTION must look like 90d, 12h, 30m or 45s, got "${text}"`))
      }
      return HotRetention.of({ millis })
    })
  )
}
