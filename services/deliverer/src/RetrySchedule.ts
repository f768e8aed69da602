/** The window of the first retry after a failed first attempt (ms): the 1–5 s. */
export const FIRST_RETRY = { min: 1_000, max: 5_000 } as const

/** No gap between two attempts of a delivery is longer than this (ms), whatever a server asks for. */
export const MAX_GAP = 10 * 60_000

/** The range a retry's gap is drawn from (ms). */
export interface BackoffWindow {
  readonly min: number
  readonly max: number
}

/**
 * Where the gap after failed attempt `attempt` (from 1) is drawn from.
 *
 * After the first attempt it is the 1–5 s. From then on it is equal
 * jitter: a nominal delay of 5 s doubled per attempt (10 s, 20 s, 40 s, ...)
 * and capped at 10 minutes, of which the upper half is random. Equal rather
 * than full jitter, because a full-jitter gap can be close to zero however many
 * attempts failed: an endpoint that is down or overloaded would get no
 * guaranteed rest, and the gaps would only grow on average. With equal jitter
 * each window starts where the previous one ended, so every gap is at least as
 * long as the one before (until the cap), while deliveries that failed together
 * (every notification queued during a receiver's outage) still spread over a
 * factor of two instead of coming back at the same instant.
 */
export const backoffWindow = (attempt: number): BackoffWindow => {
  if (attempt <= 1) return FIRST_RETRY
  // 2 ** n is Infinity for a very large attempt; the cap still applies.
  const max = Math.min(MAX_GAP, FIRST_RETRY.max * 2 ** (attempt - 1))
  return { min: max / 2, max }
}

export interface NextAttemptInput {
  /** The number of the attempt that just failed, from 1. */
  readonly attempt: number
  /** When it failed (epoch ms). */
  readonly now: number
  /** When the delivery was first due (epoch ms): the budget counts from here. */
  readonly dueAt: number
  /** How long the endpoint asked to be left alone (ms, from its `Retry-After`; see `parseRetryAfter`). */
  readonly retryAfter?: number | undefined
  /** A uniform draw from [0, 1): `Math.random` in production, a seeded generator in tests. */
  readonly random: () => number
  /** How long after `dueAt` an attempt may still be made (ms). */
  readonly budget: number
}

/**
 * When to make the next attempt of a delivery whose attempt `attempt` failed
 * with a retryable error (epoch ms), or `"exhausted"` once that time would
 * fall after `dueAt + budget`: the delivery then goes to the dead-letter topic.
 *
 * A server's `Retry-After` is honoured as a lower bound (the gap is the longer
 * of the jittered gap and what it asked for) but only up to the 10-minute cap:
 * an alert's worth decays in minutes, so one header (misconfigured, or an
 * overloaded gateway's blanket "come back tomorrow") must not park an urgent-low
 * notification for hours, and one request per delivery every 10 minutes is a
 * load a rate-limited server can refuse cheaply with another 429.
 */
export const nextAttemptAt = (input: NextAttemptInput): number | "exhausted" => {
  const window = backoffWindow(Math.max(1, Math.floor(input.attempt)))
  // Clamped: a generator's 1 (or a faulty draw) must not leave the window.
  const draw = Math.min(Math.max(input.random(), 0), 1)
  const jittered = window.min + draw * (window.max - window.min)
  const gap = Math.round(Math.min(MAX_GAP, Math.max(jittered, input.retryAfter ?? 0)))
  const next = input.now + gap
  return next > input.dueAt + input.budget ? "exhausted" : next
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
const MONTH = MONTHS.join("|")
const DAY = "Mon|Tue|Wed|Thu|Fri|Sat|Sun"
const LONG_DAY = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
/** `Sun, 06 Nov 1994 08:49:37 GMT`, the form servers send (RFC 9110 §5.6.7). */
const IMF_FIXDATE = new RegExp(`^(?:${DAY}), (\\d{2}) (${MONTH}) (\\d{4}) (\\d{2}):(\\d{2}):(\\d{2}) GMT$`)
/** `Sunday, 06-Nov-94 08:49:37 GMT`, obsolete, which recipients must still accept. */
const RFC850_DATE = new RegExp(`^(?:${LONG_DAY}), (\\d{2})-(${MONTH})-(\\d{2}) (\\d{2}):(\\d{2}):(\\d{2}) GMT$`)
/** `Sun Nov  6 08:49:37 1994` (C's asctime), obsolete too; in UTC like the others. */
const ASCTIME_DATE = new RegExp(`^(?:${DAY}) (${MONTH}) ([ \\d]\\d) (\\d{2}):(\\d{2}):(\\d{2}) (\\d{4})$`)

const FIFTY_YEARS = 50 * 365.2425 * 24 * 60 * 60_000

/** Epoch ms of a UTC calendar time, or undefined where a field is out of range (31 Feb, 25:00). */
const utc = (year: number, month: string, day: number, hour: number, minute: number, second: number) => {
  const monthIndex = MONTHS.indexOf(month)
  // Date.UTC would roll 31 Feb over into March; such a date is malformed, not a date in March.
  const daysInMonth = (Date.UTC(year, monthIndex + 1, 1) - Date.UTC(year, monthIndex, 1)) / 86_400_000
  if (day < 1 || day > daysInMonth || hour > 23 || minute > 59 || second > 60) return undefined
  // A leap second (:60) is read as :59 rather than as the next minute.
  return Date.UTC(year, monthIndex, day, hour, minute, Math.min(second, 59))
}

/** An HTTP date (any of the three forms) as epoch ms, relative to `now` for the two-digit year. */
const parseHttpDate = (text: string, now: number): number | undefined => {
  const imf = IMF_FIXDATE.exec(text)
  if (imf !== null) {
    const [, day, month, year, hour, minute, second] = imf
    return utc(Number(year), month!, Number(day), Number(hour), Number(minute), Number(second))
  }
  const rfc850 = RFC850_DATE.exec(text)
  if (rfc850 !== null) {
    const [, day, month, yy, hour, minute, second] = rfc850
    // RFC 9110: a two-digit year more than 50 years ahead is the latest past year with those digits.
    let found: number | undefined
    for (const century of [1900, 2000, 2100, 2200]) {
      const millis = utc(century + Number(yy), month!, Number(day), Number(hour), Number(minute), Number(second))
      if (millis !== undefined && millis - now <= FIFTY_YEARS) found = millis
    }
    return found
  }
  const asctime = ASCTIME_DATE.exec(text)
  if (asctime !== null) {
    const [, month, day, hour, minute, second, year] = asctime
    return utc(Number(year), month!, Number(day!.trim()), Number(hour), Number(minute), Number(second))
  }
  return undefined
}

/**
 * A `Retry-After` header as the milliseconds to wait from `now` (epoch ms):
 * either delay-seconds (`120`) or an HTTP date, which counts from `now` and is
 * 0 when already past. Undefined when absent or malformed, which leaves the
 * backoff alone rather than guessing.
 */
export const parseRetryAfter = (header: string | undefined, now: number): number | undefined => {
  if (header === undefined) return undefined
  const text = header.trim()
  if (/^\d+$/.test(text)) return Number(text) * 1_000
  const at = parseHttpDate(text, now)
  return at === undefined ? undefined : Math.max(0, at - now)
}
