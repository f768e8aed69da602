import { Schema } from "effect"

const MINUTE = 60_000
const DAY = 24 * 60 * MINUTE

/** A wall-clock time of day, from 00:00 to 23:59. */
const ClockTime = Schema.String.check(
  Schema.isPattern(/^(?:[01]\d|2[0-3]):[0-5]\d$/, { message: "must look like 22:00 (00:00 to 23:59)" })
)

/** An ISO weekday number: 1 is Monday, 7 is Sunday. */
const IsoWeekday = Schema.Int.check(
  Schema.isBetween({ minimum: 1, maximum: 7 }, { message: "must be a weekday from 1 (Monday) to 7 (Sunday)" })
)

const formatters = new Map<string, Intl.DateTimeFormat>()

/** One formatter per zone: building one costs far more than formatting with it. Throws for an unknown zone. */
const formatterFor = (zone: string): Intl.DateTimeFormat => {
  let formatter = formatters.get(zone)
  if (formatter === undefined) {
    formatter = new Intl.DateTimeFormat("en-US", {
      timeZone: zone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric"
    })
    formatters.set(zone, formatter)
  }
  return formatter
}

/**
 * Whether the runtime knows `zone`. Intl also accepts fixed offsets (`+01:00`); they are refused, because quiet
 * hours written against an offset silently drift by an hour when the user's clocks change.
 */
const isKnownZone = (zone: string): boolean => {
  if (/^[+-]/.test(zone)) return false
  try {
    formatterFor(zone)
    return true
  } catch {
    return false
  }
}

/** An IANA time zone name that the runtime knows (`Europe/Berlin`). */
const TimeZone = Schema.String.check(
  Schema.makeFilter((zone: string) => isKnownZone(zone) || "is not a known IANA time zone")
)

/**
 * A user's quiet hours: from `start` to `end` local time in `time_zone`, on the ISO weekdays in `days` (the day a
 * period starts on). `start` after `end` runs over midnight (22:00 to 07:00); `start` equal to `end` is no quiet
 * period at all.
 */
export const QuietHours = Schema.Struct({
  start: ClockTime,
  end: ClockTime,
  time_zone: TimeZone,
  days: Schema.Array(IsoWeekday).check(
    Schema.isMinLength(1, { message: "must name at least one day" }),
    Schema.isUnique({ message: "must not name a day twice" })
  )
})
export type QuietHours = typeof QuietHours.Type

/** One quiet period, in epoch milliseconds: `start` inclusive, `end` exclusive. */
export interface QuietPeriod {
  readonly start: number
  readonly end: number
}

/**
 * What the zone's clocks show at `instant`, as the epoch milliseconds of that date and time in UTC (so
 * `wall - instant` is the zone's offset there).
 */
const wallClockAt = (zone: string, instant: number): number => {
  const fields: Record<string, number> = {}
  for (const part of formatterFor(zone).formatToParts(instant)) {
    if (part.type !== "literal") fields[part.type] = Number(part.value)
  }
  const millis = ((instant % 1000) + 1000) % 1000
  return Date.UTC(fields.year!, fields.month! - 1, fields.day!, fields.hour!, fields.minute!, fields.second!) + millis
}

const offsetAt = (zone: string, instant: number): number => wallClockAt(zone, instant) - instant

/**
 * The instant at which the zone's clocks show `wall`, or more exactly the earliest instant at which they show `wall`
 * or later: a time shown twice (clocks set back) is its first occurrence, a time skipped (clocks set forward) is the
 * first instant after the gap.
 *
 * Iterating `wall - offset` alone finds *an* instant but cannot tell which of two it found, nor where a gap starts;
 * so the offsets a day before and a day after (no zone today changes its offset twice within two days) give the
 * only two candidates, each kept if the clocks really show `wall` then. Neither does in a gap, whose end is then found by
 * bisection between them.
 */
const toInstant = (zone: string, wall: number): number => {
  const early = wall - offsetAt(zone, wall - DAY)
  const late = wall - offsetAt(zone, wall + DAY)
  const shown = [early, late].filter((instant) => wallClockAt(zone, instant) === wall)
  if (shown.length > 0) return Math.min(...shown)
  // The clocks show less than `wall` at `before` and more at `after`.
  let before = Math.min(early, late)
  let after = Math.max(early, late)
  while (after - before > 1) {
    const middle = Math.floor((before + after) / 2)
    if (wallClockAt(zone, middle) >= wall) after = middle
    else before = middle
  }
  return after
}

const minutesOf = (time: string): number => Number(time.slice(0, 2)) * 60 + Number(time.slice(3, 5))

/** The ISO weekday of a local day counted from 1970-01-01, a Thursday. */
const isoWeekdayOf = (localDay: number): number => ((((localDay + 3) % 7) + 7) % 7) + 1

/**
 * The quiet period that contains `instant`, or `undefined` when `instant` is not quiet.
 *
 * Start and end are the instants the user's clocks show those times on the day in question (see `toInstant` for
 * daylight-saving changes), so a night over a change is an hour shorter or longer in real time, and a period that
 * lies wholly in a skipped hour is empty that day.
 */
export const quietPeriodAt = (quiet: QuietHours, instant: number): QuietPeriod | undefined => {
  const startMinutes = minutesOf(quiet.start)
  const endMinutes = minutesOf(quiet.end)
  if (startMinutes === endMinutes) return undefined
  const overnight = startMinutes > endMinutes
  const today = Math.floor(wallClockAt(quiet.time_zone, instant) / DAY)
  // Only a period that started today, or yesterday if it runs over midnight, can still be going on.
  for (let day = overnight ? today - 1 : today; day <= today; day++) {
    if (!quiet.days.includes(isoWeekdayOf(day))) continue
    const start = toInstant(quiet.time_zone, day * DAY + startMinutes * MINUTE)
    if (instant < start) continue
    const end = toInstant(quiet.time_zone, (overnight ? day + 1 : day) * DAY + endMinutes * MINUTE)
    if (instant < end) return { start, end }
  }
  return undefined
}

/** Whether `instant` falls in the user's quiet hours (only urgent alerts notify then). */
export const isQuiet = (quiet: QuietHours, instant: number): boolean => quietPeriodAt(quiet, instant) !== undefined
