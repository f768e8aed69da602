import { CurrentCaller, DexMonApi, MAX_STATISTICS_DAYS, ValidationError } from "@dexmon/api"
import { ReadingsQuery } from "@dexmon/archive"
import { glucoseStatisticsOf, NIGHT_BIN_MINUTES, nightAndDayOf } from "@dexmon/statistics"
import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { readPathUnavailable } from "./Unavailable.ts"

const DAY_MS = 86_400_000

/** The caller's CGM statistics, from the hot store's SQL aggregates joined with the archive's. */
export const StatisticsHttp = HttpApiBuilder.group(
  DexMonApi,
  "statistics",
  Effect.fn(function* (handlers) {
    const readings = yield* ReadingsQuery
    return handlers.handle(
      "get",
      Effect.fn("StatisticsHttp.get")(function* ({ query }) {
        if (query.to <= query.from) {
          return yield* ValidationError.fromIssues("query", [{ path: "to", message: "must be after from" }])
        }
        if (query.to - query.from > MAX_STATISTICS_DAYS * DAY_MS) {
          return yield* ValidationError.fromIssues("query", [
            { path: "to", message: `must be at most ${MAX_STATISTICS_DAYS} days after from` }
          ])
        }
        const caller = yield* CurrentCaller
        const time_zone = query.tz ?? "UTC"
        const units = query.units ?? "mg/dL"
        const summary = yield* readings
          .summarize({
            user_id: caller.userId,
            from: query.from,
            to: query.to,
            sensor_id: query.sensor_id,
            time_zone,
            bin_minutes: NIGHT_BIN_MINUTES
          })
          .pipe(Effect.catchTags(readPathUnavailable))
        const statistics = glucoseStatisticsOf({
          ...summary,
          slots: summary.slots.length,
          from: query.from,
          to: query.to,
          units
        })
        return {
          ...statistics,
          ...nightAndDayOf(summary.by_time_of_day, units),
          time_zone,
          from: query.from,
          to: query.to,
          sensor_id: query.sensor_id ?? null
        }
      })
    )
  })
)
