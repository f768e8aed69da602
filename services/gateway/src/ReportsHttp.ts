import { AGP_DEFAULT_DAYS, AGP_MAX_DAYS, CurrentCaller, DexMonApi, ValidationError } from "@dexmon/api"
import { ReadingsQuery } from "@dexmon/archive"
import { renderAgpSvg } from "@dexmon/reports"
import { AGP_BIN_MINUTES, glucoseStatisticsOf, timeOfDayProfileOf } from "@dexmon/statistics"
import { Clock, Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { readPathUnavailable } from "./Unavailable.ts"

const DAY_MS = 86_400_000

/** Reports drawn from the caller's readings, hot and archived: the AGP. */
export const ReportsHttp = HttpApiBuilder.group(
  DexMonApi,
  "reports",
  Effect.fn(function* (handlers) {
    const readings = yield* ReadingsQuery
    return handlers.handle(
      "agp",
      Effect.fn("ReportsHttp.agp")(function* ({ query }) {
        const to = query.to ?? (yield* Clock.currentTimeMillis)
        const from = query.from ?? to - AGP_DEFAULT_DAYS * DAY_MS
        if (to <= from) {
          return yield* ValidationError.fromIssues("query", [{ path: "to", message: "must be after from" }])
        }
        if (to - from > AGP_MAX_DAYS * DAY_MS) {
          return yield* ValidationError.fromIssues("query", [
            { path: "from", message: `must be at most ${AGP_MAX_DAYS} days before to` }
          ])
        }
        const caller = yield* CurrentCaller
        const time_zone = query.tz ?? "UTC"
        const units = query.units ?? "mg/dL"
        const summary = yield* readings
          .summarize({
            user_id: caller.userId,
            from,
            to,
            sensor_id: query.sensor_id,
            time_zone,
            bin_minutes: AGP_BIN_MINUTES
          })
          .pipe(Effect.catchTags(readPathUnavailable))
        const statistics = glucoseStatisticsOf({ ...summary, slots: summary.slots.length, from, to, units })
        return renderAgpSvg({
          from,
          to,
          time_zone,
          units,
          bin_minutes: AGP_BIN_MINUTES,
          profile: timeOfDayProfileOf(summary.by_time_of_day),
          statistics
        })
      })
    )
  })
)
