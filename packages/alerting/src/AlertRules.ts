import { type AlertType, parseRetention } from "@dexmon/domain"
import { Config, Context, Effect, Layer, Schema, SchemaGetter } from "effect"
import type { QuietHours } from "./QuietHours.ts"

const MINUTE = 60_000

/**
 * The deployment's alert rules (mg/dL, milliseconds). Per-user settings
 * refine these (`rulesFor`); the defaults follow Dexcom's and Nightscout's (see the README).
 */
export interface AlertRulesShape {
  /** At or below: `URGENT_LOW`. Always on. */
  readonly urgentLowAt: number
  readonly low: { readonly enabled: boolean; readonly below: number }
  readonly high: { readonly enabled: boolean; readonly above: number }
  /** `URGENT_LOW_SOON`: the trend line projected `horizon` ahead of the newest reading is at or below `urgentLowAt`. */
  readonly urgentLowSoon: { readonly enabled: boolean; readonly horizon: number }
  /** `FALLING_FAST` / `RISING_FAST`: the trend's slope at or beyond `rate` mg/dL per minute. */
  readonly fallingFast: { readonly enabled: boolean; readonly rate: number }
  readonly risingFast: { readonly enabled: boolean; readonly rate: number }
  /** `NO_DATA`: the newest reading is older than `after`. */
  readonly noData: { readonly enabled: boolean; readonly after: number }
  /** The SENSOR readings the trend is fitted to: those within this span of the newest one. */
  readonly trendWindow: number
  /** Fewest readings in the trend window for a slope. */
  readonly trendMinReadings: number
  /** Consecutive clear readings that end an episode. */
  readonly clearReadings: number
  /** A reading that reached the log later than this after its own timestamp is late (never notifies). */
  readonly liveWindow: number
  /** After this much silence a sensor is retired: its episodes end and it is no longer checked. */
  readonly retireAfter: number
  /** Repeat n of an open, unacknowledged episode of a kind is due at its start + n × this; kinds absent never repeat. */
  readonly repeat: Partial<Record<AlertType, number>>
  /** Repeats need a reading at most this old, still in the condition: repeats stop when readings stop. */
  readonly repeatNeedsReadingWithin: number
  /** An acknowledged `URGENT_LOW` still at or below its threshold this long after the acknowledgement notifies again. */
  readonly urgentLowReminderAfter: number
  /** The owner's quiet hours: only `URGENT_LOW`, `URGENT_LOW_SOON` and `NO_DATA` notify in them. Never the deployment's. */
  readonly quietHours: QuietHours | null
}

export const defaultAlertRules: AlertRulesShape = {
  urgentLowAt: 55,
  low: { enabled: true, below: 70 },
  high: { enabled: true, above: 250 },
  urgentLowSoon: { enabled: true, horizon: 20 * MINUTE },
  fallingFast: { enabled: false, rate: 3 },
  risingFast: { enabled: false, rate: 3 },
  noData: { enabled: true, after: 20 * MINUTE },
  trendWindow: 20 * MINUTE,
  trendMinReadings: 3,
  clearReadings: 2,
  liveWindow: 15 * MINUTE,
  retireAfter: 24 * 60 * MINUTE,
  repeat: { URGENT_LOW: 5 * MINUTE },
  repeatNeedsReadingWithin: 10 * MINUTE,
  urgentLowReminderAfter: 30 * MINUTE,
  quietHours: null
}

/** A duration in the format of `DEXMON_HOT_RETENTION` (`15m`, `24h`, `90d`, `45s`), decoded to milliseconds. */
const DurationText = Schema.String.check(
  Schema.makeFilter((text: string) => parseRetention(text) !== undefined || "must look like 15m, 24h, 90d or 45s")
).pipe(
  Schema.decodeTo(Schema.Number, {
    decode: SchemaGetter.transform((text: string) => parseRetention(text) ?? 0),
    encode: SchemaGetter.transform((millis: number) => `${Math.round(millis / 1000)}s`)
  })
)

/** A duration variable (`15m`, `24h`, `45s`) in milliseconds, with a default. */
export const durationConfig = (name: string, fallback: number) =>
  Config.schema(DurationText, name).pipe(Config.withDefault(fallback))

/** The alert engine's rules for this deployment. */
export class AlertRules extends Context.Service<AlertRules, AlertRulesShape>()("dexmon/alerting/AlertRules") {
  static readonly layer = Layer.succeed(AlertRules, AlertRules.of(defaultAlertRules))

  /** Every threshold from `DEXMON_ALERT_*` variables (see the README's configuration table). */
  static readonly layerConfig = Layer.effect(
    AlertRules,
    Effect.gen(function* () {
      const d = defaultAlertRules
      const rules = yield* Config.all({
        urgentLowAt: Config.Number("DEXMON_ALERT_URGENT_LOW_AT").pipe(Config.withDefault(d.urgentLowAt)),
        low: Config.all({
          enabled: Config.Boolean("DEXMON_ALERT_LOW").pipe(Config.withDefault(d.low.enabled)),
          below: Config.Number("DEXMON_ALERT_LOW_BELOW").pipe(Config.withDefault(d.low.below))
        }),
        high: Config.all({
          enabled: Config.Boolean("DEXMON_ALERT_HIGH").pipe(Config.withDefault(d.high.enabled)),
          above: Config.Number("DEXMON_ALERT_HIGH_ABOVE").pipe(Config.withDefault(d.high.above))
        }),
        urgentLowSoon: Config.all({
          enabled: Config.Boolean("DEXMON_ALERT_URGENT_LOW_SOON").pipe(Config.withDefault(d.urgentLowSoon.enabled)),
          horizon: durationConfig("DEXMON_ALERT_URGENT_LOW_SOON_HORIZON", d.urgentLowSoon.horizon)
        }),
        fallingFast: Config.all({
          enabled: Config.Boolean("DEXMON_ALERT_FALLING_FAST").pipe(Config.withDefault(d.fallingFast.enabled)),
          rate: Config.Number("DEXMON_ALERT_FAST_RATE").pipe(Config.withDefault(d.fallingFast.rate))
        }),
        risingFast: Config.all({
          enabled: Config.Boolean("DEXMON_ALERT_RISING_FAST").pipe(Config.withDefault(d.risingFast.enabled)),
          rate: Config.Number("DEXMON_ALERT_FAST_RATE").pipe(Config.withDefault(d.risingFast.rate))
        }),
        noData: Config.all({
          enabled: Config.Boolean("DEXMON_ALERT_NO_DATA").pipe(Config.withDefault(d.noData.enabled)),
          after: durationConfig("DEXMON_ALERT_NO_DATA_AFTER", d.noData.after)
        }),
        liveWindow: durationConfig("DEXMON_ALERT_LIVE_WINDOW", d.liveWindow),
        retireAfter: durationConfig("DEXMON_ALERT_RETIRE_AFTER", d.retireAfter),
        urgentLowRepeat: Config.Boolean("DEXMON_ALERT_URGENT_LOW_REPEAT").pipe(Config.withDefault(true))
      })
      const { urgentLowRepeat, ...thresholds } = rules
      return AlertRules.of({ ...d, ...thresholds, repeat: urgentLowRepeat ? d.repeat : {} })
    })
  )
}
