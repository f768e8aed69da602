import { createHash } from "node:crypto"
import type { ValidationIssue } from "@dexmon/api"
import { SensorId, type SensorLimit, type Source, type UserId } from "@dexmon/domain"
import type { AcceptedReading } from "@dexmon/receiver"

/**
 * What Dexcom's uploaders send for a reading below the sensor's range ("LO"): kept as this value, flagged
 * `sensor_limit: "LO"`, below every low threshold a user may set (the lowest is 40).
 */
export const SGV_LOW = 39
/** What they send above it ("HI"): kept as this value, flagged `sensor_limit: "HI"`, above every high threshold (400 at most). */
export const SGV_HIGH = 401

/** The flag of an `sgv` value: Nightscout's two sentinels are sensor limits, any other value a measurement. */
export const sensorLimitOf = (sgv: number): SensorLimit | undefined =>
  sgv === SGV_LOW ? "LO" : sgv === SGV_HIGH ? "HI" : undefined
/** An `sgv` value as a reading, flagged when it is one of the sentinels. */
const sgvReading = (sensor_id: SensorId, timestamp: number, sgv: number): AcceptedReading => {
  const limit = sensorLimitOf(sgv)
  return { sensor_id, timestamp, glucose_value: sgv, ...(limit === undefined ? {} : { sensor_limit: limit }) }
}

/** The highest value a Nightscout entry may carry: DexMon's own ceiling for a glucose value. */
export const SGV_MAX = 600
/** The lowest meter (mbg) value DexMon keeps: its own floor for a glucose value. */
export const MBG_MIN = 20

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex")

/** Longest part of the device name a sensor id keeps, so the id stays within 64 characters. */
const DEVICE_PART = 40

/**
 * The sensor a Nightscout uploader's entries belong to: `ns-`, the device name with every character outside
 * a sensor id's alphabet replaced by `_` (cut to 40), `-`, and 12 hex digits of the SHA-256 of the user and the
 * whole device name. Two users' `xDrip-DexcomG6` are two sensors, and so are two devices of one user whose
 * names differ only in characters the id cannot hold. Entries without a device are `ns-unknown-…`.
 */
export const sensorIdOf = (userId: UserId, device: string | undefined): SensorId => {
  const name = device === undefined || device === "" ? "unknown" : device
  const readable = name.replace(/[^A-Za-z0-9._-]/g, "_").slice(0, DEVICE_PART)
  return SensorId.make(`ns-${readable}-${sha256(`${userId}\n${name}`).slice(0, 12)}`)
}

/**
 * The `_id` of an entry posted without one: 24 hex digits (the shape of Nightscout's ObjectIds) from what the
 * entry is, so the same entry posted again, or read back, has the same `_id`.
 */
export const entryIdOf = (sensorId: string, timestamp: number, type: string): string =>
  sha256(`${sensorId}\n${timestamp}\n${type}`).slice(0, 24)

const dateStringPattern = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})$/

/**
 * Epoch milliseconds of an ISO-8601 `dateString` with an offset in any of the forms uploaders write (`Z`,
 * `+01:00`, `+0100`), or undefined. A time without an offset is refused: its zone would be a guess.
 */
export const parseDateString = (text: string): number | undefined => {
  const match = dateStringPattern.exec(text.trim())
  if (match === null) return undefined
  const [, year, month, day, hour, minute, second = "0", fraction = "", zone = "Z"] = match
  const fields = [year, month, day, hour, minute].map(Number) as [number, number, number, number, number]
  const [y, mo, d, h, mi] = fields
  const s = Number(second)
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59) return undefined
  // Date.UTC rolls 31 February over into March: such a day does not exist.
  if (new Date(Date.UTC(y, mo - 1, d)).getUTCDate() !== d) return undefined
  // Digits past the millisecond are cut, never rounded up into the next second.
  const local = Date.UTC(y, mo - 1, d, h, mi, s, Number(`${fraction}000`.slice(0, 3)))
  if (zone === "Z") return local
  const sign = zone.startsWith("-") ? -1 : 1
  const digits = zone.slice(1).replace(":", "")
  const offsetMinutes = Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2))
  if (offsetMinutes > 18 * 60) return undefined
  return local - sign * offsetMinutes * 60_000
}

/** Why an entry was answered but not kept. */
export type IgnoredKind = "calibration" | "device_error" | "other_type" | "out_of_range" | "out_of_time"

/** What became of one posted entry. */
export type EntryOutcome =
  | {
      readonly _tag: "Reading"
      readonly source: Source
      readonly reading: AcceptedReading
      /** Where its time was read from (`[3].date`, or `dateString` for one entry), to name it in a refusal. */
      readonly timePath: string
      readonly id: string
    }
  | {
      readonly _tag: "Ignored"
      /**
       * Why, for the metric: a calibration, a device error code, a type DexMon does not keep, a value outside what
       * a sensor or meter reads, or a time DexMon does not take (too far ahead, older than the hot retention).
       */
      readonly kind: IgnoredKind
      readonly reason: string
      readonly id: string
    }

/** The posted entries, each with its outcome, in the order posted. */
export interface TranslatedEntries {
  readonly outcomes: ReadonlyArray<EntryOutcome>
  readonly posted: ReadonlyArray<Record<string, unknown>>
}

/** A posted entry as Nightscout's clients expect it back: as posted, with its `_id`, and what DexMon did with it. */
export const echoOf = (posted: Record<string, unknown>, outcome: EntryOutcome): Record<string, unknown> => ({
  ...posted,
  _id: outcome.id,
  dexmon:
    outcome._tag === "Reading"
      ? { stored: true, sensor_id: outcome.reading.sensor_id, source: outcome.source }
      : { stored: false, reason: outcome.reason }
})

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/**
 * Turns a posted body (one entry or an array) into readings of `userId`, or the issues of every bad entry
 * (paths `[i].field` in an array, `field` for one entry). An `sgv` entry becomes a SENSOR reading, an `mbg`
 * entry a MANUAL one; `cal` entries, other types, `sgv` values below 39 (device error codes) and values outside
 * what a sensor or meter reads are ignored, and the echo says so: an uploader resends a refused post, so one odd
 * value must not hold every reading after it back. Only a malformed entry (a field of the wrong type, no time)
 * refuses the whole body.
 */
export const translateEntries = (
  userId: UserId,
  body: unknown
):
  | { readonly _tag: "Translated"; readonly entries: TranslatedEntries }
  | {
      readonly _tag: "Invalid"
      readonly issues: ReadonlyArray<ValidationIssue>
    } => {
  const single = !Array.isArray(body)
  const items: ReadonlyArray<unknown> = Array.isArray(body) ? body : [body]
  const issues: Array<ValidationIssue> = []
  const outcomes: Array<EntryOutcome> = []
  const posted: Array<Record<string, unknown>> = []
  items.forEach((item, index) => {
    const at = (field: string) => (single ? field : `[${index}].${field}`)
    const where = single ? "the body" : `[${index}]`
    if (!isRecord(item)) {
      issues.push({ path: single ? "" : `[${index}]`, message: `${where} must be an entry (a JSON object)` })
      return
    }
    const before = issues.length
    const text = (field: string): string | undefined => {
      const value = item[field]
      if (value === undefined || value === null) return undefined
      if (typeof value === "string") return value
      issues.push({ path: at(field), message: "must be a string" })
      return undefined
    }
    const number = (field: string): number | undefined => {
      const value = item[field]
      if (value === undefined || value === null) return undefined
      if (typeof value === "number" && Number.isFinite(value)) return value
      issues.push({ path: at(field), message: "must be a finite number" })
      return undefined
    }
    const sgv = number("sgv")
    const mbg = number("mbg")
    const type = text("type") ?? (sgv !== undefined ? "sgv" : mbg !== undefined ? "mbg" : undefined)
    const device = text("device")
    const postedId = text("_id")
    const date = number("date")
    const dateString = text("dateString")
    let timestamp: number | undefined
    if (date !== undefined) {
      timestamp = Math.round(date)
    } else if (dateString !== undefined) {
      timestamp = parseDateString(dateString)
      if (timestamp === undefined) {
        issues.push({
          path: at("dateString"),
          message: "must be an ISO-8601 date and time with an offset, such as 2026-11-30T10:15:00.000+0100"
        })
      }
    } else if ((type === "sgv" || type === "mbg") && item.date == null && item.dateString == null) {
      issues.push({ path: at("date"), message: "an entry needs date (epoch milliseconds) or dateString" })
    }
    if (type === undefined && issues.length === before) {
      issues.push({ path: at("type"), message: "an entry needs type, sgv or mbg" })
    }
    if (type === "sgv" && sgv === undefined && issues.length === before) {
      issues.push({ path: at("sgv"), message: "an sgv entry needs sgv, in mg/dL" })
    }
    if (type === "mbg" && mbg === undefined && issues.length === before) {
      issues.push({ path: at("mbg"), message: "an mbg entry needs mbg, in mg/dL" })
    }
    if (issues.length > before || type === undefined) return
    const sensorId = sensorIdOf(userId, device)
    const id = postedId ?? entryIdOf(sensorId, timestamp ?? 0, type)
    const timePath = at(date !== undefined ? "date" : "dateString")
    const ignored = (kind: IgnoredKind, reason: string): EntryOutcome => ({
      _tag: "Ignored",
      kind,
      reason,
      id
    })
    const outcome: EntryOutcome =
      type === "sgv" && sgv !== undefined && timestamp !== undefined
        ? sgv < SGV_LOW
          ? ignored(
              "device_error",
              `sgv ${sgv} is a device error code (below ${SGV_LOW}, which means LO), not a reading`
            )
          : sgv > SGV_MAX
            ? ignored("out_of_range", `sgv ${sgv} is above ${SGV_MAX} mg/dL, more than any sensor reads (401 means HI)`)
            : {
                _tag: "Reading",
                source: "SENSOR",
                reading: sgvReading(sensorId, timestamp, sgv),
                timePath,
                id
              }
        : type === "mbg" && mbg !== undefined && timestamp !== undefined
          ? mbg < MBG_MIN || mbg > SGV_MAX
            ? ignored("out_of_range", `mbg ${mbg} is outside ${MBG_MIN} to ${SGV_MAX} mg/dL, what a meter reads`)
            : {
                _tag: "Reading",
                source: "MANUAL",
                reading: { sensor_id: sensorId, timestamp, glucose_value: mbg },
                timePath,
                id
              }
          : type === "cal"
            ? ignored("calibration", "calibration entries are not kept")
            : ignored("other_type", `entries of type ${type} are not kept`)
    outcomes.push(outcome)
    posted.push(item)
  })
  return issues.length > 0 ? { _tag: "Invalid", issues } : { _tag: "Translated", entries: { outcomes, posted } }
}
