import type { NightscoutEntry, ValidationIssue } from "@dexmon/api"
import type { Reading } from "@dexmon/domain"
import { rateBetween, type TimedGlucose, trendOf } from "@dexmon/statistics"
import { entryIdOf, parseDateString } from "./Entries.ts"

const DAY = 86_400_000

/** The latest instant a filter may name: the end of the year 9999, as far as ISO-8601 and PostgreSQL reach. */
const LATEST_TIME = Date.UTC(9999, 11, 31, 23, 59, 59, 999)

/** How far back a read without a lower date bound looks: Nightscout's default, the last 4 days. */
export const DEFAULT_LOOKBACK_MS = 4 * DAY

/** What an entries read asks for: a range of times, and which values. */
export interface EntriesFilter {
  /** Inclusive, epoch milliseconds. */
  readonly from: number
  /** Exclusive, epoch milliseconds. */
  readonly to: number
  readonly types: ReadonlySet<"sgv" | "mbg">
  readonly matchesValue: (value: number) => boolean
}

/** The types and format a path names: `/entries`, `/entries.csv`, `/entries/sgv.json`, `/entries/current`... */
export interface EntriesSpec {
  readonly types: ReadonlySet<"sgv" | "mbg">
  /** `current`: the newest sgv alone. */
  readonly current: boolean
  readonly format: "json" | "csv" | "tsv" | "txt"
}

const BOTH: ReadonlySet<"sgv" | "mbg"> = new Set(["sgv", "mbg"])

/** The spec of `/entries/:spec`, or undefined for one DexMon does not serve (`cal`, an `_id`...). */
export const entriesSpecOf = (spec: string): EntriesSpec | undefined => {
  const match = /^(sgv|mbg|current)(?:\.(json|csv|tsv|txt))?$/.exec(spec)
  if (match === null) return undefined
  const [, kind, format = "json"] = match
  return {
    types: new Set([kind === "mbg" ? "mbg" : "sgv"]),
    current: kind === "current",
    format: format as EntriesSpec["format"]
  }
}

/** `/entries` and `/entries.<format>`: both types. */
export const entriesSpecFor = (format: EntriesSpec["format"]): EntriesSpec => ({ types: BOTH, current: false, format })

/** A time in a `find[date]` (epoch milliseconds, `.0` allowed) or `find[dateString]` (ISO-8601, or a day alone). */
const timeOf = (field: "date" | "dateString", value: string): number | undefined => {
  if (field === "date") {
    const millis = Number(value)
    return value.trim() !== "" && Number.isFinite(millis) ? millis : undefined
  }
  if (/^\d{4}-\d{2}-\d{2}$/.test(value)) return parseDateString(`${value}T00:00:00Z`)
  // An offset's `+` left unescaped in a URL arrives as a space.
  return parseDateString(value.replace(/ (\d{2}:?\d{2})$/, "+$1"))
}

const FIND_KEY = /^find\[(date|dateString|sgv|mbg|type)\](?:\[\$(gte|gt|lte|lt|eq|in)\])?$/

/**
 * The filter of an entries read from its query (`find[date][$gte]=…` and the like, percent-encoded or not), or
 * every issue in it. Times bound the range (`$gt` of a fractional time is past it); without a lower bound the
 * range starts 4 days before its end, and without an upper bound it ends a day from `now` (clocks drift).
 * `find[sgv]` (or `find[mbg]`) compares the value; `find[type]` narrows the types.
 */
export const parseEntriesFind = (
  params: URLSearchParams,
  spec: EntriesSpec,
  now: number
):
  | { readonly _tag: "Filter"; readonly filter: EntriesFilter }
  | {
      readonly _tag: "Invalid"
      readonly issues: ReadonlyArray<ValidationIssue>
    } => {
  const issues: Array<ValidationIssue> = []
  let from: number | undefined
  let to: number | undefined
  const value: Array<(glucose: number) => boolean> = []
  let types = spec.types
  for (const [key, raw] of params) {
    if (!key.startsWith("find")) continue
    const match = FIND_KEY.exec(key)
    if (match === null) {
      issues.push({
        path: key,
        message: "DexMon filters entries by find[date], find[dateString], find[sgv], find[mbg] or find[type] only"
      })
      continue
    }
    const [, field = "", operator = "eq"] = match
    if (field === "type") {
      const asked = new Set(raw.split("|"))
      types = new Set([...types].filter((type) => asked.has(type)))
      continue
    }
    if (field === "sgv" || field === "mbg") {
      const numbers = (operator === "in" ? raw.split("|") : [raw]).map(Number)
      if (numbers.some((number) => !Number.isFinite(number)) || raw.trim() === "") {
        issues.push({
          path: key,
          message: `must be a number (mg/dL)${operator === "in" ? ", or numbers joined by |" : ""}`
        })
        continue
      }
      const [bound = 0] = numbers
      value.push(
        operator === "in"
          ? (glucose) => numbers.includes(glucose)
          : operator === "gte"
            ? (glucose) => glucose >= bound
            : operator === "gt"
              ? (glucose) => glucose > bound
              : operator === "lte"
                ? (glucose) => glucose <= bound
                : operator === "lt"
                  ? (glucose) => glucose < bound
                  : (glucose) => glucose === bound
      )
      continue
    }
    const time = operator === "in" ? undefined : timeOf(field as "date" | "dateString", raw)
    if (time !== undefined && (time < 0 || time > LATEST_TIME)) {
      issues.push({ path: key, message: "must be an instant from 1970 to 9999" })
      continue
    }
    if (time === undefined) {
      issues.push({
        path: key,
        message:
          operator === "in"
            ? "$in is for sgv and mbg; bound a date with $gte, $gt, $lte, $lt or $eq"
            : field === "date"
              ? "must be epoch milliseconds"
              : "must be an ISO-8601 date and time with an offset, or a day (2026-11-30)"
      })
      continue
    }
    // Readings are stored to the millisecond: a bound between two milliseconds moves to the one it admits.
    const lower =
      operator === "gt" ? Math.floor(time) + 1 : operator === "gte" || operator === "eq" ? Math.ceil(time) : undefined
    const upper =
      operator === "lt" ? Math.ceil(time) : operator === "lte" || operator === "eq" ? Math.floor(time) + 1 : undefined
    if (lower !== undefined) from = from === undefined ? lower : Math.max(from, lower)
    if (upper !== undefined) to = to === undefined ? upper : Math.min(to, upper)
  }
  if (issues.length > 0) return { _tag: "Invalid", issues }
  // Nothing is stored past now (give or take the 5 minutes a phone's clock may run ahead): an end past a day
  // from now reads as a day from now, and the default start is 4 days before now or the end, whichever is first.
  const end = Math.min(to ?? now + DAY, now + DAY)
  return {
    _tag: "Filter",
    filter: {
      from: from ?? Math.min(end, now) - DEFAULT_LOOKBACK_MS,
      to: end,
      types,
      matchesValue: (glucose) => value.every((test) => test(glucose))
    }
  }
}

/** Nightscout's name and number for each of DexMon's trends. */
const DIRECTIONS = {
  DoubleUp: ["DoubleUp", 1],
  SingleUp: ["SingleUp", 2],
  FortyFiveUp: ["FortyFiveUp", 3],
  Flat: ["Flat", 4],
  FortyFiveDown: ["FortyFiveDown", 5],
  SingleDown: ["SingleDown", 6],
  DoubleDown: ["DoubleDown", 7],
  NotComputable: ["NOT COMPUTABLE", 8]
} as const

/** The device a sensor id names: the device part of a Nightscout uploader's `ns-<device>-<hash>`, else the id. */
export const deviceOf = (sensorId: string): string => /^ns-(.+)-[0-9a-f]{12}$/.exec(sensorId)?.[1] ?? sensorId

/**
 * A reading in Nightscout's shape. A SENSOR reading is an `sgv` with DexMon's trend as `direction` and `trend`
 * and `delta`, the change from `previous` (the sensor's previous SENSOR reading within 15 minutes); a MANUAL one
 * is an `mbg`.
 */
export const nightscoutEntryOf = (reading: Reading, previous: TimedGlucose | undefined): NightscoutEntry => {
  const dateString = new Date(reading.timestamp).toISOString()
  const common = {
    device: deviceOf(reading.sensor_id),
    date: reading.timestamp,
    dateString,
    sysTime: dateString,
    utcOffset: 0
  }
  if (reading.source === "MANUAL") {
    return {
      _id: entryIdOf(reading.sensor_id, reading.timestamp, "mbg"),
      ...common,
      type: "mbg",
      mbg: reading.glucose_value
    }
  }
  const rate = rateBetween(previous, { timestamp: reading.timestamp, value: reading.glucose_value })
  const [direction, trend] = DIRECTIONS[trendOf(rate)]
  return {
    _id: entryIdOf(reading.sensor_id, reading.timestamp, "sgv"),
    ...common,
    type: "sgv",
    sgv: reading.glucose_value,
    direction,
    trend,
    delta:
      rate === null || previous === undefined
        ? null
        : Math.round((reading.glucose_value - previous.value) * 1000) / 1000
  }
}

/** Entries as Nightscout's text formats write them: `"dateString"`, date, value, `"direction"`, `"device"`. */
export const entriesText = (entries: ReadonlyArray<NightscoutEntry>, separator: "," | "\t"): string =>
  entries
    .map((entry) =>
      [
        JSON.stringify(entry.dateString),
        entry.date,
        entry.sgv ?? entry.mbg,
        JSON.stringify(entry.direction ?? ""),
        JSON.stringify(entry.device)
      ].join(separator)
    )
    .map((line) => `${line}\n`)
    .join("")
