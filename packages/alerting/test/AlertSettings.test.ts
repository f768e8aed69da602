import { assert, describe, it } from "@effect/vitest"
import { Effect, Schema, SchemaIssue } from "effect"
import { type AlertRulesShape, defaultAlertRules } from "../src/AlertRules.ts"
import {
  AlertSettings,
  decodeAlertSettings,
  defaultAlertSettings,
  encodeAlertSettings,
  rulesFor,
  settingsEtag
} from "../src/AlertSettings.ts"

const MINUTE = 60_000

const formatIssues = SchemaIssue.makeFormatterStandardSchemaV1()

type Segment = PropertyKey | { readonly key: PropertyKey }

/** `low.threshold`, `(root)` for the document itself: as the API's `issues[].path` writes it. */
const formatPath = (path: ReadonlyArray<Segment>): string =>
  path
    .map((segment) => (typeof segment === "object" ? segment.key : segment))
    .reduce<string>(
      (text, key) =>
        typeof key === "number" ? `${text}[${key}]` : text === "" ? String(key) : `${text}.${String(key)}`,
      ""
    ) || "(root)"

/** Every leaf of a decoding failure as `path: message`. */
const issuesOf = (error: Schema.SchemaError): ReadonlyArray<string> =>
  formatIssues(error.issue).issues.map((leaf) => `${formatPath(leaf.path ?? [])}: ${leaf.message}`)

/** A document with every field away from its default. */
const changed: AlertSettings = {
  low: { enabled: false, threshold: 80, repeat_minutes: 15 },
  urgent_low: { threshold: 50, repeat_minutes: 10 },
  urgent_low_soon: { enabled: false, horizon_minutes: 30, repeat_minutes: 240 },
  high: { enabled: false, threshold: 180, repeat_minutes: 120 },
  falling_fast: { enabled: true, rate: 2, repeat_minutes: 5 },
  rising_fast: { enabled: true, rate: 2.5, repeat_minutes: 30 },
  no_data: { enabled: false, minutes: 60, repeat_minutes: 60 },
  quiet_hours: { start: "22:00", end: "07:00", time_zone: "Europe/Berlin", days: [1, 2, 3, 4, 5] }
}

describe("defaults", () => {
  it.effect("an empty body decodes to the default document", () =>
    Effect.gen(function* () {
      const settings = yield* decodeAlertSettings({})
      assert.deepStrictEqual(settings, defaultAlertSettings(defaultAlertRules))
      assert.deepStrictEqual(settings, {
        low: { enabled: true, threshold: 70, repeat_minutes: null },
        urgent_low: { threshold: 55, repeat_minutes: 5 },
        urgent_low_soon: { enabled: true, horizon_minutes: 20, repeat_minutes: null },
        high: { enabled: true, threshold: 250, repeat_minutes: null },
        falling_fast: { enabled: false, rate: 3, repeat_minutes: null },
        rising_fast: { enabled: false, rate: 3, repeat_minutes: null },
        no_data: { enabled: true, minutes: 20, repeat_minutes: null },
        quiet_hours: null
      })
    })
  )

  it.effect("an omitted key inside a kind takes its default; the given ones are kept", () =>
    Effect.gen(function* () {
      const settings = yield* decodeAlertSettings({ low: { threshold: 85 }, falling_fast: { enabled: true } })
      const defaults = defaultAlertSettings(defaultAlertRules)
      assert.deepStrictEqual(settings, {
        ...defaults,
        low: { ...defaults.low, threshold: 85 },
        falling_fast: { ...defaults.falling_fast, enabled: true }
      })
    })
  )

  it("the default document's rules are the deployment's", () => {
    const deployment: AlertRulesShape = {
      ...defaultAlertRules,
      urgentLowAt: 50,
      low: { enabled: false, below: 80 },
      noData: { enabled: true, after: 30 * MINUTE }
    }
    assert.deepStrictEqual(rulesFor(defaultAlertRules, defaultAlertSettings(defaultAlertRules)), defaultAlertRules)
    assert.deepStrictEqual(rulesFor(deployment, defaultAlertSettings(deployment)), deployment)
  })
})

describe("round trip", () => {
  it.effect.each([
    { name: "the defaults", settings: defaultAlertSettings(defaultAlertRules) },
    { name: "every field changed", settings: changed }
  ])("$name: what GET encodes, PUT decodes to the same document", ({ settings }) =>
    Effect.gen(function* () {
      const encoded = encodeAlertSettings(settings)
      assert.deepStrictEqual(Object.keys(encoded).sort(), Object.keys(settings).sort())
      assert.deepStrictEqual(yield* decodeAlertSettings(JSON.parse(JSON.stringify(encoded))), settings)
    })
  )
})

describe("rulesFor", () => {
  const d = defaultAlertRules
  it.effect.each<{ name: string; body: object; rules: Partial<AlertRulesShape> }>([
    { name: "low", body: { low: { enabled: false, threshold: 80 } }, rules: { low: { enabled: false, below: 80 } } },
    {
      name: "high",
      body: { high: { enabled: false, threshold: 180 } },
      rules: { high: { enabled: false, above: 180 } }
    },
    {
      name: "urgent low soon",
      body: { urgent_low_soon: { enabled: false, horizon_minutes: 30 } },
      rules: { urgentLowSoon: { enabled: false, horizon: 30 * MINUTE } }
    },
    {
      name: "falling fast",
      body: { falling_fast: { enabled: true, rate: 2 } },
      rules: { fallingFast: { enabled: true, rate: 2 } }
    },
    {
      name: "rising fast",
      body: { rising_fast: { enabled: true, rate: 4.5 } },
      rules: { risingFast: { enabled: true, rate: 4.5 } }
    },
    {
      name: "no data",
      body: { no_data: { enabled: false, minutes: 90 } },
      rules: { noData: { enabled: false, after: 90 * MINUTE } }
    },
    { name: "urgent low stays the deployment's", body: { urgent_low: { threshold: 40 } }, rules: {} },
    {
      name: "repeats become the rules' repeat intervals (none for a kind set to null); quiet hours are the owner's",
      body: {
        low: { repeat_minutes: 30 },
        urgent_low: { repeat_minutes: null },
        no_data: { repeat_minutes: 240 },
        quiet_hours: changed.quiet_hours
      },
      rules: { repeat: { LOW: 30 * MINUTE, NO_DATA: 240 * MINUTE }, quietHours: changed.quiet_hours }
    },
    {
      name: "every field at once",
      body: changed,
      rules: {
        low: { enabled: false, below: 80 },
        high: { enabled: false, above: 180 },
        urgentLowSoon: { enabled: false, horizon: 30 * MINUTE },
        fallingFast: { enabled: true, rate: 2 },
        risingFast: { enabled: true, rate: 2.5 },
        noData: { enabled: false, after: 60 * MINUTE },
        repeat: {
          URGENT_LOW: 10 * MINUTE,
          LOW: 15 * MINUTE,
          HIGH: 120 * MINUTE,
          URGENT_LOW_SOON: 240 * MINUTE,
          FALLING_FAST: 5 * MINUTE,
          RISING_FAST: 30 * MINUTE,
          NO_DATA: 60 * MINUTE
        },
        quietHours: changed.quiet_hours
      }
    }
  ])("$name", ({ body, rules }) =>
    Effect.gen(function* () {
      const settings = yield* decodeAlertSettings(body)
      assert.deepStrictEqual(rulesFor(d, settings), { ...d, ...rules })
      // A deployment that lowered urgent low and changed the engine's parameters keeps them.
      const deployment: AlertRulesShape = { ...d, urgentLowAt: 50, trendWindow: 30 * MINUTE, clearReadings: 3 }
      assert.deepStrictEqual(rulesFor(deployment, settings), { ...deployment, ...rules })
    })
  )
})

describe("the defaults of a deployment with values no user may choose", () => {
  it.effect("are moved into the bounds, so GET answers a document a PUT accepts", () =>
    Effect.gen(function* () {
      const deployment: AlertRulesShape = {
        ...defaultAlertRules,
        urgentLowAt: 60,
        low: { enabled: true, below: 55 },
        high: { enabled: true, above: 450 },
        noData: { enabled: true, after: 20_000 },
        fallingFast: { enabled: true, rate: 1 },
        repeat: { URGENT_LOW: 60_000 }
      }
      const shown = defaultAlertSettings(deployment)
      assert.deepStrictEqual(
        [
          shown.urgent_low.threshold,
          shown.low.threshold,
          shown.high.threshold,
          shown.no_data.minutes,
          shown.falling_fast.rate,
          shown.urgent_low.repeat_minutes
        ],
        [55, 60, 400, 10, 2, 5]
      )
      assert.deepStrictEqual(yield* decodeAlertSettings(encodeAlertSettings(shown)), shown)
    })
  )
})

describe("refused bodies", () => {
  it.effect.each<{ name: string; body: unknown; path: string }>([
    { name: "low below 60", body: { low: { threshold: 59 } }, path: "low.threshold" },
    { name: "low above 100", body: { low: { threshold: 101 } }, path: "low.threshold" },
    { name: "high below 120", body: { high: { threshold: 119 } }, path: "high.threshold" },
    { name: "high above 400", body: { high: { threshold: 401 } }, path: "high.threshold" },
    { name: "urgent low below 40", body: { urgent_low: { threshold: 39 } }, path: "urgent_low.threshold" },
    { name: "urgent low raised above 55", body: { urgent_low: { threshold: 56 } }, path: "urgent_low.threshold" },
    {
      name: "horizon below 10",
      body: { urgent_low_soon: { horizon_minutes: 9 } },
      path: "urgent_low_soon.horizon_minutes"
    },
    {
      name: "horizon above 30",
      body: { urgent_low_soon: { horizon_minutes: 31 } },
      path: "urgent_low_soon.horizon_minutes"
    },
    { name: "fall rate below 2", body: { falling_fast: { rate: 1.9 } }, path: "falling_fast.rate" },
    { name: "fall rate above 5", body: { falling_fast: { rate: 5.1 } }, path: "falling_fast.rate" },
    { name: "rise rate below 2", body: { rising_fast: { rate: 1 } }, path: "rising_fast.rate" },
    { name: "rise rate above 5", body: { rising_fast: { rate: 6 } }, path: "rising_fast.rate" },
    { name: "no data below 10", body: { no_data: { minutes: 9 } }, path: "no_data.minutes" },
    { name: "no data above 120", body: { no_data: { minutes: 121 } }, path: "no_data.minutes" },
    // With Dexcom's bounds (low at most 100, high at least 120) the bound on `low` is what refuses this.
    {
      name: "low not below high",
      body: { low: { threshold: 130 }, high: { threshold: 120 } },
      path: "low.threshold"
    },
    { name: "repeat every 4 minutes", body: { low: { repeat_minutes: 4 } }, path: "low.repeat_minutes" },
    { name: "repeat every 241 minutes", body: { high: { repeat_minutes: 241 } }, path: "high.repeat_minutes" },
    {
      name: "repeat every 7.5 minutes",
      body: { urgent_low: { repeat_minutes: 7.5 } },
      path: "urgent_low.repeat_minutes"
    },
    { name: "repeat as text", body: { no_data: { repeat_minutes: "5" } }, path: "no_data.repeat_minutes" },
    { name: "threshold as text", body: { low: { threshold: "70" } }, path: "low.threshold" },
    { name: "threshold 70.5", body: { low: { threshold: 70.5 } }, path: "low.threshold" },
    { name: "enabled as text", body: { high: { enabled: "yes" } }, path: "high.enabled" },
    { name: "enabled null", body: { falling_fast: { enabled: null } }, path: "falling_fast.enabled" },
    { name: "rate as text", body: { rising_fast: { rate: "3" } }, path: "rising_fast.rate" },
    { name: "minutes as a boolean", body: { no_data: { minutes: true } }, path: "no_data.minutes" },
    { name: "a kind that is a number", body: { low: 70 }, path: "low" },
    { name: "a kind that is null", body: { high: null }, path: "high" },
    { name: "urgent low turned off", body: { urgent_low: { enabled: false } }, path: "urgent_low.enabled" },
    { name: "an unknown kind", body: { lows: { threshold: 70 } }, path: "lows" },
    { name: "an unknown kind beside known ones", body: { low: {}, very_high: {} }, path: "very_high" },
    { name: "an unknown field inside a kind", body: { high: { above: 250 } }, path: "high.above" },
    { name: "a misspelt field", body: { no_data: { minutes: 20, minuets: 30 } }, path: "no_data.minuets" },
    {
      name: "quiet hours with a misspelt field",
      body: { quiet_hours: { ...changed.quiet_hours, timezone: "Europe/Berlin" } },
      path: "quiet_hours.timezone"
    },
    {
      name: "quiet hours on no day",
      body: { quiet_hours: { ...changed.quiet_hours, days: [] } },
      path: "quiet_hours.days"
    },
    { name: "quiet hours that are text", body: { quiet_hours: "22:00-07:00" }, path: "quiet_hours" },
    { name: "a body that is null", body: null, path: "(root)" },
    { name: "a body that is an array", body: [], path: "(root)" },
    { name: "a body that is text", body: "low=70", path: "(root)" }
  ])("$name", ({ body, path }) =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(decodeAlertSettings(body))
      const issues = issuesOf(error)
      assert.isAbove(issues.length, 0)
      assert.strictEqual(issues[0]!.slice(0, issues[0]!.indexOf(": ")), path, issues.join("; "))
    })
  )

  it.effect("the message says what is allowed", () =>
    Effect.gen(function* () {
      const issues = (body: unknown) => Effect.flip(decodeAlertSettings(body)).pipe(Effect.map(issuesOf))
      assert.deepStrictEqual(yield* issues({ low: { threshold: 101 } }), [
        "low.threshold: must be an integer from 60 to 100 (mg/dL)"
      ])
      assert.deepStrictEqual(yield* issues({ falling_fast: { rate: 6 } }), [
        "falling_fast.rate: must be from 2 to 5 (mg/dL per minute)"
      ])
      assert.deepStrictEqual(yield* issues({ lows: {} }), ["lows: Expected no excess property"])
    })
  )

  it.effect("decoded without the strict parse options, an unknown key would be dropped silently", () =>
    Effect.gen(function* () {
      const lax = yield* Schema.decodeUnknownEffect(AlertSettings)({ urgent_low: { enabled: false } })
      assert.deepStrictEqual(lax, defaultAlertSettings(defaultAlertRules))
    })
  )
})

describe("settingsEtag", () => {
  it("is a quoted hex digest, the same for the same document whatever its key order", () => {
    const etag = settingsEtag(changed)
    assert.match(etag, /^"[0-9a-f]{32}"$/)
    const reordered = Object.fromEntries(Object.entries(changed).reverse()) as AlertSettings
    assert.strictEqual(settingsEtag(reordered), etag)
  })

  it("changes when any field changes", () => {
    const defaults = defaultAlertSettings(defaultAlertRules)
    const etags = new Set([
      settingsEtag(defaults),
      settingsEtag({ ...defaults, low: { ...defaults.low, threshold: 71 } }),
      settingsEtag({ ...defaults, low: { ...defaults.low, repeat_minutes: 5 } }),
      settingsEtag({ ...defaults, no_data: { ...defaults.no_data, enabled: false } })
    ])
    assert.strictEqual(etags.size, 4)
  })
})
