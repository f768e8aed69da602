import { Schema } from "effect"

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
 * hours or a report's times of day written against an offset silently drift by an hour when the clocks change.
 */
export const isKnownZone = (zone: string): boolean => {
  if (/^[+-]/.test(zone)) return false
  try {
    formatterFor(zone)
    return true
  } catch {
    return false
  }
}

/** An IANA time zone name that the runtime knows (`Europe/Berlin`). */
export const TimeZone = Schema.String.annotate({
  description: "an IANA time zone (America/New_York, Asia/Kolkata, UTC): local times are its wall clock's"
}).check(Schema.makeFilter((zone: string) => isKnownZone(zone) || "is not a known IANA time zone"))

/** The wall clock at `instant` as Intl formats it: exact, and the costly part (a few microseconds a call). */
const formattedWallClockAt = (zone: string, instant: number): number => {
  const fields: Record<string, number> = {}
  for (const part of formatterFor(zone).formatToParts(instant)) {
    if (part.type !== "literal") fields[part.type] = Number(part.value)
  }
  const millis = ((instant % 1000) + 1000) % 1000
  return Date.UTC(fields.year!, fields.month! - 1, fields.day!, fields.hour!, fields.minute!, fields.second!) + millis
}

const HOUR_MS = 3_600_000

/** Offsets by zone and UTC hour; `null`: the offset changes within that hour. A zone's is cleared past a bound. */
const hourOffsets = new Map<string, Map<number, number | null>>()
const MAX_CACHED_HOURS = 100_000

/**
 * What the zone's clocks show at `instant`, as the epoch milliseconds of that date and time in UTC (so
 * `wall - instant` is the zone's offset there).
 *
 * A summary bins every archived reading by it (a year is 105,000 readings, 0.44 s of Intl calls), so the offset
 * is kept per zone and UTC hour: an hour whose first and last millisecond have the same offset has it
 * throughout (no zone changes its clocks twice within an hour), and an hour in which the clocks change is
 * formatted reading by reading, as before.
 */
export const wallClockAt = (zone: string, instant: number): number => {
  const hour = Math.floor(instant / HOUR_MS)
  let offsets = hourOffsets.get(zone)
  if (offsets === undefined) {
    offsets = new Map()
    hourOffsets.set(zone, offsets)
  }
  let offset = offsets.get(hour)
  if (offset === undefined) {
    const first = hour * HOUR_MS
    const last = first + HOUR_MS - 1
    const atFirst = formattedWallClockAt(zone, first) - first
    offset = formattedWallClockAt(zone, last) - last === atFirst ? atFirst : null
    if (offsets.size >= MAX_CACHED_HOURS) offsets.clear()
    offsets.set(hour, offset)
  }
  return offset === null ? formattedWallClockAt(zone, instant) : instant + offset
}
