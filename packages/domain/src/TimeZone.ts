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

/**
 * What the zone's clocks show at `instant`, as the epoch milliseconds of that date and time in UTC (so
 * `wall - instant` is the zone's offset there).
 */
export const wallClockAt = (zone: string, instant: number): number => {
  const fields: Record<string, number> = {}
  for (const part of formatterFor(zone).formatToParts(instant)) {
    if (part.type !== "literal") fields[part.type] = Number(part.value)
  }
  const millis = ((instant % 1000) + 1000) % 1000
  return Date.UTC(fields.year!, fields.month! - 1, fields.day!, fields.hour!, fields.minute!, fields.second!) + millis
}
