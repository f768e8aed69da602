import { TimeZone, wallClockAt } from "@dexmon/domain"
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
