import { createHash } from "node:crypto"
import type { ReadingView } from "@dexmon/api"
import type { ReadingsQuery } from "@dexmon/archive"
import type { Reading, UserId } from "@dexmon/domain"
import { rateBetween, type TimedGlucose, TREND_WINDOW_MS, toUnits, trendOf, type Units } from "@dexmon/statistics"
import { Effect } from "effect"

/**
 * The previous SENSOR reading of `reading`'s sensor within the trend window, the caller's only, hot or archived:
 * the last of the readings in the 15 minutes before it.
 */
export const previousSensorReading = Effect.fnUntraced(function* (
  readings: ReadingsQuery["Service"],
  userId: UserId,
  reading: Reading
) {
  let previous: TimedGlucose | undefined
  let cursor: string | undefined
  do {
    const page = yield* readings.list({
      user_id: userId,
      sensor_id: reading.sensor_id,
      from: reading.timestamp - TREND_WINDOW_MS,
      to: reading.timestamp,
      limit: 1000,
      cursor
    })
    for (const item of page.items) {
      if (item.source === "SENSOR") previous = { timestamp: item.timestamp, value: item.glucose_value }
    }
    cursor = page.next_cursor ?? undefined
  } while (cursor !== undefined)
  return previous
})

/** A reading as served: in `units`, with the rate from `previous` (mg/dL) and its trend, and its own etag. */
export const readingView = (reading: Reading, units: Units, previous: TimedGlucose | undefined): ReadingView => {
  const rate =
    reading.source === "SENSOR"
      ? rateBetween(previous, { timestamp: reading.timestamp, value: reading.glucose_value })
      : null
  // The stored etag names the value; the representation's adds what else it shows, so a cached copy in other
  // units or with an older trend is not mistaken for this one.
  const shown = createHash("sha256").update(`${units}|${rate}`).digest("hex").slice(0, 8)
  return {
    ...reading,
    glucose_value: toUnits(reading.glucose_value, units),
    units,
    rate: rate === null ? null : toUnits(rate, units),
    trend: trendOf(rate),
    etag: `${reading.etag}.${shown}`
  }
}

/**
 * The views of a page's readings (in (timestamp, sensor) order). A reading's previous SENSOR reading is the one
 * before it in the page when its sensor has one there (the page holds every reading of the caller between its
 * first and last), else it is looked up: once per sensor and page, whether hot or archived. Computed on read, as
 * a neighbour that arrives later changes the trend.
 */
export const readingViews = Effect.fnUntraced(function* (
  readings: ReadingsQuery["Service"],
  userId: UserId,
  items: ReadonlyArray<Reading>,
  units: Units
) {
  const lastInPage = new Map<string, TimedGlucose>()
  const views: Array<ReadingView> = []
  for (const reading of items) {
    if (reading.source !== "SENSOR") {
      views.push(readingView(reading, units, undefined))
      continue
    }
    const previous = lastInPage.has(reading.sensor_id)
      ? lastInPage.get(reading.sensor_id)
      : yield* previousSensorReading(readings, userId, reading)
    views.push(readingView(reading, units, previous))
    lastInPage.set(reading.sensor_id, { timestamp: reading.timestamp, value: reading.glucose_value })
  }
  return views
})
