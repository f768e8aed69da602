import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, Result, Schema, SchemaIssue } from "effect"
import { isQuiet, QuietHours, quietPeriodAt } from "../src/QuietHours.ts"

const MINUTE = 60_000
const HOUR = 60 * MINUTE
const at = (iso: string) => Date.parse(iso)
const everyDay = [1, 2, 3, 4, 5, 6, 7]
const weekdays = [1, 2, 3, 4, 5]

const nights: QuietHours = { start: "22:00", end: "07:00", time_zone: "Europe/Berlin", days: everyDay }

describe("a night over a daylight-saving change (22:00 to 07:00 every day, Europe/Berlin)", () => {
  // 2026-03-29: 02:00 CET becomes 03:00 CEST at 01:00Z. 2026-10-25: 03:00 CEST becomes 02:00 CET at 01:00Z.
  it.each([
    { night: "an ordinary night", probe: "2026-03-28T01:00:00Z", start: "2026-03-27T21:00:00Z", hours: 9 },
    {
      night: "spring forward, before the gap",
      probe: "2026-03-29T00:59:59.999Z",
      start: "2026-03-28T21:00:00Z",
      hours: 8
    },
    { night: "spring forward, after the gap", probe: "2026-03-29T01:00:00Z", start: "2026-03-28T21:00:00Z", hours: 8 },
    { night: "fall back, the first 02:30", probe: "2026-10-25T00:30:00Z", start: "2026-10-24T20:00:00Z", hours: 10 },
    { night: "fall back, the second 02:30", probe: "2026-10-25T01:30:00Z", start: "2026-10-24T20:00:00Z", hours: 10 }
  ])("$night: the period starts at $start and lasts $hours h", ({ probe, start, hours }) => {
    assert.deepStrictEqual(quietPeriodAt(nights, at(probe)), { start: at(start), end: at(start) + hours * HOUR })
  })

  it.each([
    { edge: "22:00 CET, spring forward", instant: "2026-03-28T21:00:00Z", quiet: true },
    { edge: "just before, spring forward", instant: "2026-03-28T20:59:59.999Z", quiet: false },
    { edge: "07:00 CEST, spring forward", instant: "2026-03-29T05:00:00Z", quiet: false },
    { edge: "just before, spring forward", instant: "2026-03-29T04:59:59.999Z", quiet: true },
    { edge: "22:00 CEST, fall back", instant: "2026-10-24T20:00:00Z", quiet: true },
    { edge: "just before, fall back", instant: "2026-10-24T19:59:59.999Z", quiet: false },
    { edge: "07:00 CET, fall back", instant: "2026-10-25T06:00:00Z", quiet: false },
    { edge: "just before, fall back", instant: "2026-10-25T05:59:59.999Z", quiet: true }
  ])("$edge ($instant) is quiet: $quiet", ({ instant, quiet }) => {
    assert.strictEqual(isQuiet(nights, at(instant)), quiet)
  })
})

describe("a start or end the clocks skip or show twice", () => {
  const sundays = (start: string, end: string): QuietHours => ({ start, end, time_zone: "Europe/Berlin", days: [7] })

  it.each([
    // 02:30 does not exist on 2026-03-29: the period starts when the clocks reach 03:00 CEST.
    {
      case: "a start in the gap",
      quiet: sundays("02:30", "04:00"),
      probe: "2026-03-29T01:00:00Z",
      start: "2026-03-29T01:00:00Z",
      end: "2026-03-29T02:00:00Z"
    },
    {
      case: "an end in the gap",
      quiet: sundays("01:00", "02:30"),
      probe: "2026-03-29T00:59:59.999Z",
      start: "2026-03-29T00:00:00Z",
      end: "2026-03-29T01:00:00Z"
    },
    // 02:30 happens twice on 2026-10-25: at 00:30Z (CEST) and at 01:30Z (CET); the first one counts.
    {
      case: "a start shown twice",
      quiet: sundays("02:30", "04:00"),
      probe: "2026-10-25T01:30:00Z",
      start: "2026-10-25T00:30:00Z",
      end: "2026-10-25T03:00:00Z"
    },
    {
      case: "an end shown twice",
      quiet: sundays("01:00", "02:30"),
      probe: "2026-10-25T00:00:00Z",
      start: "2026-10-24T23:00:00Z",
      end: "2026-10-25T00:30:00Z"
    }
  ])("$case", ({ quiet, probe, start, end }) => {
    assert.deepStrictEqual(quietPeriodAt(quiet, at(probe)), { start: at(start), end: at(end) })
  })

  it("the second pass through a repeated hour is after an end in it", () => {
    assert.isFalse(isQuiet(sundays("01:00", "02:30"), at("2026-10-25T01:15:00Z")))
  })

  it("a period wholly inside the skipped hour is empty that night, and an hour long the next week", () => {
    const skipped = sundays("02:10", "02:40")
    for (let t = at("2026-03-28T23:00:00Z"); t < at("2026-03-29T03:00:00Z"); t += MINUTE) {
      assert.isUndefined(quietPeriodAt(skipped, t), new Date(t).toISOString())
    }
    assert.deepStrictEqual(quietPeriodAt(skipped, at("2026-04-05T00:10:00Z")), {
      start: at("2026-04-05T00:10:00Z"),
      end: at("2026-04-05T00:40:00Z")
    })
  })
})

describe("which days count", () => {
  const afternoons: QuietHours = { start: "13:00", end: "15:00", time_zone: "America/New_York", days: weekdays }
  const weeknights: QuietHours = { start: "22:00", end: "07:00", time_zone: "America/New_York", days: weekdays }

  it.each([
    { when: "Monday 13:00 EST", instant: "2026-03-02T18:00:00Z", quiet: true },
    { when: "Monday 12:59 EST", instant: "2026-03-02T17:59:00Z", quiet: false },
    { when: "Monday 14:59:59.999 EST", instant: "2026-03-02T19:59:59.999Z", quiet: true },
    { when: "Monday 15:00 EST", instant: "2026-03-02T20:00:00Z", quiet: false },
    { when: "Friday 14:00 EST", instant: "2026-03-06T19:00:00Z", quiet: true },
    { when: "Saturday 14:00 EST", instant: "2026-03-07T19:00:00Z", quiet: false },
    { when: "Sunday 14:00 EDT", instant: "2026-03-08T18:00:00Z", quiet: false },
    { when: "Monday 13:00 EDT", instant: "2026-03-09T17:00:00Z", quiet: true },
    { when: "Monday 15:00 EDT", instant: "2026-03-09T19:00:00Z", quiet: false }
  ])("13:00 to 15:00 on weekdays, New York: $when is quiet: $quiet", ({ instant, quiet }) => {
    assert.strictEqual(isQuiet(afternoons, at(instant)), quiet)
  })

  it.each([
    { when: "Thursday 23:00", instant: "2026-02-06T04:00:00Z", quiet: true },
    { when: "Friday 22:00", instant: "2026-02-07T03:00:00Z", quiet: true },
    { when: "Saturday 06:59", instant: "2026-02-07T11:59:00Z", quiet: true },
    { when: "Saturday 07:00", instant: "2026-02-07T12:00:00Z", quiet: false },
    { when: "Saturday 23:00", instant: "2026-02-08T04:00:00Z", quiet: false },
    { when: "Sunday 06:00", instant: "2026-02-08T11:00:00Z", quiet: false },
    { when: "Sunday 23:00", instant: "2026-02-09T04:00:00Z", quiet: false },
    { when: "Monday 06:00", instant: "2026-02-09T11:00:00Z", quiet: false },
    { when: "Monday 22:00", instant: "2026-02-10T03:00:00Z", quiet: true }
  ])("22:00 to 07:00 on weekdays (the day it starts), New York: $when is quiet: $quiet", ({ instant, quiet }) => {
    assert.strictEqual(isQuiet(weeknights, at(instant)), quiet)
  })
})

describe("the quiet-hours document", () => {
  const valid = { start: "22:00", end: "07:00", time_zone: "Europe/Berlin", days: [1, 2, 3, 4, 5] }
  const issuesOf = (input: unknown) => {
    const result = Schema.decodeUnknownResult(QuietHours)(input, { errors: "all" })
    return Result.isFailure(result)
      ? SchemaIssue.makeFormatterStandardSchemaV1()(result.failure.issue).issues.map((i) => ({
          path: i.path,
          message: i.message
        }))
      : []
  }

  it("accepts a valid one", () => {
    assert.deepStrictEqual(issuesOf(valid), [])
    assert.deepStrictEqual(issuesOf({ ...valid, start: "00:00", end: "23:59", days: [7] }), [])
  })

  const time = "must look like 22:00 (00:00 to 23:59)"
  const weekday = "must be a weekday from 1 (Monday) to 7 (Sunday)"
  const zone = "is not a known IANA time zone"
  it.each([
    { bad: "start 24:00", input: { ...valid, start: "24:00" }, issues: [{ path: ["start"], message: time }] },
    { bad: "start 7:00", input: { ...valid, start: "7:00" }, issues: [{ path: ["start"], message: time }] },
    { bad: "end 07:60", input: { ...valid, end: "07:60" }, issues: [{ path: ["end"], message: time }] },
    { bad: "end 07:00:00", input: { ...valid, end: "07:00:00" }, issues: [{ path: ["end"], message: time }] },
    {
      bad: "no days",
      input: { ...valid, days: [] },
      issues: [{ path: ["days"], message: "must name at least one day" }]
    },
    {
      bad: "a day twice",
      input: { ...valid, days: [1, 5, 1] },
      issues: [{ path: ["days"], message: "must not name a day twice" }]
    },
    { bad: "day 0", input: { ...valid, days: [1, 0] }, issues: [{ path: ["days", 1], message: weekday }] },
    { bad: "day 8", input: { ...valid, days: [8] }, issues: [{ path: ["days", 0], message: weekday }] },
    {
      bad: "an unknown zone",
      input: { ...valid, time_zone: "Europe/Atlantis" },
      issues: [{ path: ["time_zone"], message: zone }]
    },
    { bad: "an empty zone", input: { ...valid, time_zone: "" }, issues: [{ path: ["time_zone"], message: zone }] },
    {
      bad: "a fixed offset",
      input: { ...valid, time_zone: "+01:00" },
      issues: [{ path: ["time_zone"], message: zone }]
    },
    {
      bad: "everything at once",
      input: { start: "25:00", end: "07:00", time_zone: "Mars/Olympus", days: [] },
      issues: [
        { path: ["start"], message: time },
        { path: ["time_zone"], message: zone },
        { path: ["days"], message: "must name at least one day" }
      ]
    }
  ])("refuses $bad, naming the field", ({ input, issues }) => {
    assert.deepStrictEqual(issuesOf(input), issues)
  })
})

// The reference: format the instant in the zone and compare local HH:MM and weekday directly.

const zones = [
  "Europe/Berlin",
  "America/New_York",
  "Australia/Lord_Howe", // DST moves the clocks by 30 minutes
  "Asia/Kolkata", // +05:30, no DST
  "Pacific/Chatham", // +12:45 / +13:45, changes at 02:45 and 03:45
  "America/Santiago", // changes at midnight: a day starts at 01:00, or 23:00 comes twice
  "Pacific/Kiritimati", // +14
  "Pacific/Pago_Pago" // -11
] as const

const memo = <A>(make: (zone: string) => A) => {
  const made = new Map<string, A>()
  return (zone: string): A => {
    if (!made.has(zone)) made.set(zone, make(zone))
    return made.get(zone)!
  }
}

const weekdayClock = memo(
  (timeZone) =>
    new Intl.DateTimeFormat("en-US", {
      timeZone,
      weekday: "short",
      hour: "2-digit",
      minute: "2-digit",
      hourCycle: "h23"
    })
)
const fullClock = memo(
  (timeZone) =>
    new Intl.DateTimeFormat("en-US", { timeZone, dateStyle: "short", timeStyle: "medium", hourCycle: "h23" })
)
const offsetName = memo((timeZone) => new Intl.DateTimeFormat("en-US", { timeZone, timeZoneName: "longOffset" }))
const isoWeekdays: Record<string, number> = { Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6, Sun: 7 }
const minutesOf = (time: string) => Number(time.slice(0, 2)) * 60 + Number(time.slice(3, 5))

const localClock = (zone: string, instant: number) => {
  const parts = Object.fromEntries(
    weekdayClock(zone)
      .formatToParts(instant)
      .map((p) => [p.type, p.value])
  )
  return { weekday: isoWeekdays[parts.weekday!]!, minutes: Number(parts.hour) * 60 + Number(parts.minute) }
}

const referenceIsQuiet = (quiet: QuietHours, instant: number): boolean => {
  const { weekday, minutes } = localClock(quiet.time_zone, instant)
  const start = minutesOf(quiet.start)
  const end = minutesOf(quiet.end)
  if (start === end) return false
  if (start < end) return quiet.days.includes(weekday) && start <= minutes && minutes < end
  const yesterday = weekday === 1 ? 7 : weekday - 1
  return (start <= minutes && quiet.days.includes(weekday)) || (minutes < end && quiet.days.includes(yesterday))
}

/**
 * The clocks, set back, show this time for the second time, and the start or the end comes up within the repeated
 * hour. Its first occurrence has passed, so quiet hours count it as passed, while comparing HH:MM says it has not.
 */
const isSecondPassBeforeBoundary = (quiet: QuietHours, instant: number): boolean => {
  const clock = fullClock(quiet.time_zone)
  if (![HOUR / 2, HOUR].some((shift) => clock.format(instant - shift) === clock.format(instant))) return false
  const { minutes } = localClock(quiet.time_zone, instant)
  return [quiet.start, quiet.end].some((time) => {
    const ahead = (minutesOf(time) - minutes + 24 * 60) % (24 * 60)
    return ahead > 0 && ahead <= 60
  })
}

const FROM = at("2026-01-01T00:00:00Z")
const TWO_YEARS_IN_MINUTES = 2 * 365 * 24 * 60

/** The instants each zone's offset changes in 2026 and 2027, to the minute, found by scanning and bisecting. */
const transitions = memo((zone) => {
  const offset = (t: number) =>
    offsetName(zone)
      .formatToParts(t)
      .find((p) => p.type === "timeZoneName")!.value
  const found: Array<number> = []
  for (let t = FROM; t < FROM + TWO_YEARS_IN_MINUTES * MINUTE; t += 6 * HOUR) {
    if (offset(t) === offset(t + 6 * HOUR)) continue
    let [before, after] = [t, t + 6 * HOUR]
    while (after - before > MINUTE) {
      const middle = before + Math.floor((after - before) / MINUTE / 2) * MINUTE
      if (offset(middle) === offset(t)) before = middle
      else after = middle
    }
    found.push(after)
  }
  return found
})

const int = (minimum: number, maximum: number) => Schema.Int.check(Schema.isBetween({ minimum, maximum }))
const quarterHour = Arbitrary.map(Arbitrary.schema(int(0, 95)), (quarter) => {
  const minutes = quarter * 15
  return `${String(Math.floor(minutes / 60)).padStart(2, "0")}:${String(minutes % 60).padStart(2, "0")}`
})
const quietHours = Arbitrary.all({
  start: quarterHour,
  end: quarterHour,
  time_zone: Arbitrary.schema(Schema.Literals(zones)),
  days: Arbitrary.schema(QuietHours.fields.days)
})
/** Whole minutes over two years; half of them within five hours of one of the zone's offset changes. */
const quietAndInstant = Arbitrary.flatMap(quietHours, (quiet) =>
  Arbitrary.map(
    Arbitrary.all({
      nearChange: Arbitrary.schema(Schema.Boolean),
      minute: Arbitrary.schema(int(0, TWO_YEARS_IN_MINUTES)),
      change: Arbitrary.schema(int(0, 3)),
      shift: Arbitrary.schema(int(-300, 300))
    }),
    ({ nearChange, minute, change, shift }) => {
      const changes = transitions(quiet.time_zone)
      const instant =
        nearChange && changes.length > 0 ? changes[change % changes.length]! + shift * MINUTE : FROM + minute * MINUTE
      return { quiet, instant }
    }
  )
)

describe("quiet hours agree with reading the clock", () => {
  it.prop(
    "isQuiet is the local HH:MM and weekday compared directly",
    [quietAndInstant],
    ([{ quiet, instant }]) => {
      if (isSecondPassBeforeBoundary(quiet, instant)) return
      const period = quietPeriodAt(quiet, instant)
      assert.strictEqual(period !== undefined, referenceIsQuiet(quiet, instant), JSON.stringify({ quiet, instant }))
      if (period !== undefined) assert.isTrue(period.start <= instant && instant < period.end)
    },
    { timeout: 60_000, arbitrary: { runs: 5_000 } }
  )

  it.prop(
    "start equal to end is never quiet",
    [quietAndInstant],
    ([{ quiet, instant }]) => {
      assert.isUndefined(quietPeriodAt({ ...quiet, end: quiet.start }, instant))
    },
    { arbitrary: { runs: 500 } }
  )
})
