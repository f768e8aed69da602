import { createHash } from "node:crypto"
import type { AlertType } from "@dexmon/domain"
import { Effect, Schema, type SchemaAST } from "effect"
import { type AlertRulesShape, defaultAlertRules } from "./AlertRules.ts"
import { QuietHours } from "./QuietHours.ts"

const MINUTE = 60_000

const integerFrom = (minimum: number, maximum: number, unit: string) =>
  Schema.Int.check(
    Schema.isBetween({ minimum, maximum }, { message: `must be an integer from ${minimum} to ${maximum} (${unit})` })
  )

/**
 * An absent key decodes to `value`; encoding writes every key, so the document
 * GET returns is whole and a PUT of it changes nothing.
 */
const withDefault = <S extends Schema.Top>(schema: S, value: S["Encoded"]) =>
  schema.pipe(Schema.withDecodingDefaultKey(Effect.succeed(value)))

/** Minutes between repeats of a notification while its episode stays open; `null` sends it once. */
const RepeatMinutes = Schema.NullOr(integerFrom(5, 240, "minutes"))

const Rate = Schema.Finite.check(
  Schema.isBetween({ minimum: 2, maximum: 5 }, { message: "must be from 2 to 5 (mg/dL per minute)" })
)

const d = defaultAlertRules

/**
 * One user's alert settings, as the API reads and writes them. Bounds are
 * Dexcom's. An omitted key takes its value from `defaultAlertRules`, not from a
 * deployment's configured rules: the schema is static, as the HTTP API is.
 *
 * `urgent_low` has no `enabled`: it cannot be turned off. Its `threshold` is
 * shown so the document says where urgent low fires, but a user cannot move
 * it: {@link rulesFor} keeps the deployment's `urgentLowAt`, and a value above
 * Dexcom's 55 is refused outright. The floor (40) is the lowest value a sensor
 * reports.
 *
 * Unknown keys are refused only when decoding with `onExcessProperty: "error"`
 * ({@link alertSettingsParseOptions}): Effect's Struct strips them otherwise,
 * and a check would run too late to see them.
 */
export const AlertSettings = Schema.Struct({
  low: withDefault(
    Schema.Struct({
      enabled: withDefault(Schema.Boolean, d.low.enabled),
      threshold: withDefault(integerFrom(60, 100, "mg/dL"), d.low.below),
      repeat_minutes: withDefault(RepeatMinutes, null)
    }),
    {}
  ),
  urgent_low: withDefault(
    Schema.Struct({
      threshold: withDefault(integerFrom(40, 55, "mg/dL"), d.urgentLowAt),
      repeat_minutes: withDefault(RepeatMinutes, 5)
    }),
    {}
  ),
  urgent_low_soon: withDefault(
    Schema.Struct({
      enabled: withDefault(Schema.Boolean, d.urgentLowSoon.enabled),
      horizon_minutes: withDefault(integerFrom(10, 30, "minutes"), d.urgentLowSoon.horizon / MINUTE),
      repeat_minutes: withDefault(RepeatMinutes, null)
    }),
    {}
  ),
  high: withDefault(
    Schema.Struct({
      enabled: withDefault(Schema.Boolean, d.high.enabled),
      threshold: withDefault(integerFrom(120, 400, "mg/dL"), d.high.above),
      repeat_minutes: withDefault(RepeatMinutes, null)
    }),
    {}
  ),
  falling_fast: withDefault(
    Schema.Struct({
      enabled: withDefault(Schema.Boolean, d.fallingFast.enabled),
      rate: withDefault(Rate, d.fallingFast.rate),
      repeat_minutes: withDefault(RepeatMinutes, null)
    }),
    {}
  ),
  rising_fast: withDefault(
    Schema.Struct({
      enabled: withDefault(Schema.Boolean, d.risingFast.enabled),
      rate: withDefault(Rate, d.risingFast.rate),
      repeat_minutes: withDefault(RepeatMinutes, null)
    }),
    {}
  ),
  no_data: withDefault(
    Schema.Struct({
      enabled: withDefault(Schema.Boolean, d.noData.enabled),
      minutes: withDefault(integerFrom(10, 120, "minutes"), d.noData.after / MINUTE),
      repeat_minutes: withDefault(RepeatMinutes, null)
    }),
    {}
  ),
  quiet_hours: withDefault(Schema.NullOr(QuietHours), null)
})
  .check(
    Schema.makeFilter((settings) =>
      settings.low.threshold < settings.high.threshold
        ? undefined
        : { path: ["low", "threshold"], issue: "must be below high.threshold" }
    )
  )
  .annotate({ identifier: "AlertSettings" })

export type AlertSettings = typeof AlertSettings.Type

/** How a settings document must be decoded: a misspelt or unknown key is an error, not silently dropped. */
export const alertSettingsParseOptions: SchemaAST.ParseOptions = { onExcessProperty: "error" }

/** Decodes a PUT body, refusing unknown keys at every level. */
export const decodeAlertSettings = Schema.decodeUnknownEffect(AlertSettings, alertSettingsParseOptions)

export const encodeAlertSettings = Schema.encodeSync(AlertSettings)

/** `value` moved into `[minimum, maximum]`, as a whole number when `whole`. */
const within = (value: number, minimum: number, maximum: number, whole = true) =>
  Math.min(maximum, Math.max(minimum, whole ? Math.round(value) : value))

/**
 * The document GET returns before a user has changed anything: the
 * deployment's rules and repeats, moved into the bounds a user may set (a
 * deployment may use values no user may choose, e.g. a 20-second silence in
 * a test; the document shows the nearest one a user could write back).
 */
export const defaultAlertSettings = (rules: AlertRulesShape): AlertSettings => {
  const repeatOf = (kind: AlertType) => {
    const every = rules.repeat[kind]
    return every === undefined ? null : within(every / MINUTE, 5, 240)
  }
  return {
    low: { enabled: rules.low.enabled, threshold: within(rules.low.below, 60, 100), repeat_minutes: repeatOf("LOW") },
    urgent_low: { threshold: within(rules.urgentLowAt, 40, 55), repeat_minutes: repeatOf("URGENT_LOW") },
    urgent_low_soon: {
      enabled: rules.urgentLowSoon.enabled,
      horizon_minutes: within(rules.urgentLowSoon.horizon / MINUTE, 10, 30),
      repeat_minutes: repeatOf("URGENT_LOW_SOON")
    },
    high: {
      enabled: rules.high.enabled,
      threshold: within(rules.high.above, 120, 400),
      repeat_minutes: repeatOf("HIGH")
    },
    falling_fast: {
      enabled: rules.fallingFast.enabled,
      rate: within(rules.fallingFast.rate, 2, 5, false),
      repeat_minutes: repeatOf("FALLING_FAST")
    },
    rising_fast: {
      enabled: rules.risingFast.enabled,
      rate: within(rules.risingFast.rate, 2, 5, false),
      repeat_minutes: repeatOf("RISING_FAST")
    },
    no_data: {
      enabled: rules.noData.enabled,
      minutes: within(rules.noData.after / MINUTE, 10, 120),
      repeat_minutes: repeatOf("NO_DATA")
    },
    quiet_hours: null
  }
}

/**
 * The rules the engine applies to one user: the deployment's, with the user's
 * thresholds, switches, horizon, rates and no-data delay. `urgentLowAt` and
 * the engine's own parameters (trend window, episode end, retirement) stay the
 * deployment's. Repeats and quiet hours shape which notifications go out.
 */
export const rulesFor = (deployment: AlertRulesShape, settings: AlertSettings): AlertRulesShape => ({
  ...deployment,
  low: { enabled: settings.low.enabled, below: settings.low.threshold },
  high: { enabled: settings.high.enabled, above: settings.high.threshold },
  urgentLowSoon: {
    enabled: settings.urgent_low_soon.enabled,
    horizon: settings.urgent_low_soon.horizon_minutes * MINUTE
  },
  fallingFast: { enabled: settings.falling_fast.enabled, rate: settings.falling_fast.rate },
  risingFast: { enabled: settings.rising_fast.enabled, rate: settings.rising_fast.rate },
  noData: { enabled: settings.no_data.enabled, after: settings.no_data.minutes * MINUTE },
  repeat: Object.fromEntries(
    (
      [
        ["URGENT_LOW", settings.urgent_low.repeat_minutes],
        ["LOW", settings.low.repeat_minutes],
        ["HIGH", settings.high.repeat_minutes],
        ["URGENT_LOW_SOON", settings.urgent_low_soon.repeat_minutes],
        ["FALLING_FAST", settings.falling_fast.repeat_minutes],
        ["RISING_FAST", settings.rising_fast.repeat_minutes],
        ["NO_DATA", settings.no_data.repeat_minutes]
      ] as const
    ).flatMap(([kind, minutes]) => (minutes === null ? [] : [[kind, minutes * MINUTE]]))
  ),
  quietHours: settings.quiet_hours
})

/** JSON with every object's keys sorted, so equal documents give equal text whatever their key order. */
const canonicalJson = (value: unknown): string =>
  JSON.stringify(value, (_key, inner: unknown) =>
    inner !== null && typeof inner === "object" && !Array.isArray(inner)
      ? Object.fromEntries(Object.entries(inner).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : inner
  )

/**
 * A strong ETag of a settings document (quoted, as the header carries it): a
 * SHA-256 prefix of its canonical encoding, so a client's `If-Match` names
 * exactly the document it read.
 */
export const settingsEtag = (settings: AlertSettings): string =>
  `"${createHash("sha256")
    .update(canonicalJson(encodeAlertSettings(settings)))
    .digest("hex")
    .slice(0, 32)}"`
