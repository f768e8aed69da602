import { CSV_EXPORT_COLUMNS, type ExportFormat, ReadingView } from "@dexmon/api"
import type { ReadingsQuery } from "@dexmon/archive"
import type { Reading, SensorId, UserId } from "@dexmon/domain"
import type { TimedGlucose, Units } from "@dexmon/statistics"
import { Effect, Option, Schema, Stream } from "effect"
import { previousSensorReading, readingView } from "./ReadingViews.ts"

/** Readings per page read while exporting: memory holds about one page, whatever the range. */
export const EXPORT_PAGE_SIZE = 1000

const encoder = new TextEncoder()
const encodeView = Schema.encodeSync(ReadingView)

/** One CSV line: the columns need no quoting (sensor ids are `[A-Za-z0-9._-]`, the rest enums and numbers). */
const csvLine = (view: ReadingView) =>
  `${view.sensor_id},${new Date(view.timestamp).toISOString()},${view.glucose_value},${view.source},${view.trend},${view.rate ?? ""}\n`

export interface ExportQuery {
  readonly user_id: UserId
  readonly from: number
  readonly to: number
  readonly sensor_id?: SensorId | undefined
  readonly units: Units
  readonly format: ExportFormat
}

/**
 * The caller's readings in the range as the bytes of a CSV or NDJSON document, page after page of
 * `ReadingsQuery` (hot and archived, in (timestamp, sensor) order), pulled as the client reads, so memory
 * holds a page whatever the range. Trends carry over from page to page: a sensor's previous reading is
 * looked up once, before its first reading in the range.
 */
export const exportReadings = (readings: ReadingsQuery["Service"], query: ExportQuery) => {
  const lastOfSensor = new Map<string, TimedGlucose>()
  const viewOf = Effect.fnUntraced(function* (reading: Reading) {
    if (reading.source !== "SENSOR") return readingView(reading, query.units, undefined)
    const previous = lastOfSensor.has(reading.sensor_id)
      ? lastOfSensor.get(reading.sensor_id)
      : yield* previousSensorReading(readings, query.user_id, reading)
    lastOfSensor.set(reading.sensor_id, { timestamp: reading.timestamp, value: reading.glucose_value })
    return readingView(reading, query.units, previous)
  })
  const header =
    query.format === "csv" ? Stream.make(encoder.encode(`${CSV_EXPORT_COLUMNS.join(",")}\n`)) : Stream.empty
  const pages = Stream.paginate(undefined as string | undefined, (cursor) =>
    readings
      .list({
        user_id: query.user_id,
        from: query.from,
        to: query.to,
        sensor_id: query.sensor_id,
        limit: EXPORT_PAGE_SIZE,
        cursor
      })
      .pipe(
        Effect.flatMap((page) =>
          Effect.forEach(page.items, viewOf).pipe(
            Effect.map((views) => {
              const text =
                query.format === "csv"
                  ? views.map(csvLine).join("")
                  : views.map((view) => `${JSON.stringify(encodeView(view))}\n`).join("")
              return [
                text === "" ? [] : [encoder.encode(text)],
                Option.fromNullishOr(page.next_cursor ?? undefined)
              ] as const
            })
          )
        )
      )
  )
  return Stream.concat(header, pages)
}
