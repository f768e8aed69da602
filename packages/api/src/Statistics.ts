import { IsoTimestamp, SensorId, TimeZone } from "@dexmon/domain"
import { Units } from "@dexmon/statistics"
import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "effect/http-api"
import { ServiceUnavailable, ValidationError } from "./Errors.ts"
import { Caller, RequiredScope } from "./Middleware.ts"

/** The longest window one statistics request may cover: a year, hot and archived. */
export const MAX_STATISTICS_DAYS = 366

const Percent = Schema.Finite.annotate({ description: "a percentage, 0 to 100, unrounded" })

const RangeShare = Schema.Struct({
  percent: Schema.Finite.annotate({ description: "share of the readings in the range, in percent, unrounded" }),
  minutes: Schema.Finite.annotate({
    description: "that share of the minutes with CGM data (five-minute slots with a reading × 5), unrounded"
  })
})

const Episode = Schema.Struct({
  sensor_ids: Schema.Array(SensorId).annotate({
    description:
      "the sensors that saw it: each sensor's series has its own episodes, and those of sensors worn at once that overlap in time are one"
  }),
  start: IsoTimestamp.annotate({ description: "the first reading of the episode" }),
  end: Schema.NullOr(IsoTimestamp).annotate({
    description:
      "the first reading of the 15 minutes back past the threshold that ended it, or the last reading before a data gap of over 15 minutes; null while it lasted to the end of the data"
  }),
  minutes: Schema.Finite.annotate({ description: "from start to end (or to its last reading), unrounded" })
})

const Episodes = Schema.Struct({
  count: Schema.Int,
  minutes: Schema.Finite.annotate({ description: "the episodes' minutes added up" }),
  items: Schema.Array(Episode).annotate({ description: "in order of start" })
})

const PeriodShare = Schema.Struct({
  percent: Schema.Finite.annotate({ description: "share of the period's readings in the range, in percent, unrounded" })
})

const PeriodStatistics = Schema.Struct({
  readings: Schema.Int.annotate({ description: "SENSOR readings in the period" }),
  time_in_ranges: Schema.Struct({
    very_low: PeriodShare,
    low: PeriodShare,
    in_range: PeriodShare,
    high: PeriodShare,
    very_high: PeriodShare
  }).annotate({ description: "the same ranges as the whole window's, as shares of the period's readings" }),
  mean: Schema.NullOr(Schema.Finite).annotate({ description: "in `units`; null without readings" }),
  standard_deviation: Schema.NullOr(Schema.Finite).annotate({ description: "population, in `units`" }),
  coefficient_of_variation: Schema.NullOr(Schema.Finite).annotate({ description: "in percent" })
})

/**
 * CGM statistics of a window per the international consensus (Battelino et al., Diabetes Care 2019), from
 * SENSOR readings only (manual readings are left out), hot and archived alike. Numbers are unrounded:
 * rounding is the client's.
 */
export const GlucoseStatisticsView = Schema.Struct({
  from: IsoTimestamp.annotate({ description: "the window's start, included" }),
  to: IsoTimestamp.annotate({ description: "the window's end, excluded" }),
  sensor_id: Schema.NullOr(SensorId).annotate({ description: "the one sensor counted, or null for all the caller's" }),
  units: Units.annotate({ description: "the units of `mean` and `standard_deviation`" }),
  time_zone: Schema.String.annotate({ description: "the IANA zone whose local time splits night from day" }),
  readings: Schema.Int.annotate({ description: "SENSOR readings in the window" }),
  window_minutes: Schema.Finite.annotate({ description: "the window's length in minutes" }),
  window_days: Schema.Finite.annotate({ description: "the window's length in days" }),
  cgm_active_percent: Percent.annotate({
    description: "five-minute slots of the window holding at least one reading, in percent (time CGM active)"
  }),
  data_sufficient: Schema.Boolean.annotate({
    description: "CGM active at least 70 % of a window of at least 14 days, as the consensus asks for"
  }),
  time_in_ranges: Schema.Struct({
    very_low: RangeShare.annotate({ description: "below 54 mg/dL (3.0 mmol/L)" }),
    low: RangeShare.annotate({ description: "54 to below 70 mg/dL" }),
    in_range: RangeShare.annotate({ description: "70 to 180 mg/dL, both included" }),
    high: RangeShare.annotate({ description: "above 180 to 250 mg/dL" }),
    very_high: RangeShare.annotate({ description: "above 250 mg/dL (13.9 mmol/L)" })
  }),
  mean: Schema.NullOr(Schema.Finite).annotate({ description: "mean glucose in `units`; null without readings" }),
  standard_deviation: Schema.NullOr(Schema.Finite).annotate({
    description: "population standard deviation in `units`"
  }),
  coefficient_of_variation: Schema.NullOr(Schema.Finite).annotate({
    description: "standard deviation / mean, in percent"
  }),
  variability_high: Schema.Boolean.annotate({ description: "coefficient of variation above 36 %" }),
  gmi_percent: Schema.NullOr(Schema.Finite).annotate({
    description: "glucose management indicator: 3.31 + 0.02392 × mean mg/dL"
  }),
  gmi_mmol_per_mol: Schema.NullOr(Schema.Finite).annotate({
    description: "glucose management indicator: 12.71 + 4.70587 × mean mmol/L"
  }),
  night: PeriodStatistics.annotate({
    description:
      "readings from 00:00 to 06:00 local time in `time_zone`, when lows go unnoticed (the overnight period of Danne et al., Diabetes Care 2017)"
  }),
  day: PeriodStatistics.annotate({ description: "readings from 06:00 to 24:00 local time in `time_zone`" }),
  episodes: Schema.Struct({
    below_54: Episodes.annotate({ description: "at least 15 minutes below 54 mg/dL, ended by 15 minutes at or above" }),
    below_70: Episodes.annotate({ description: "at least 15 minutes below 70 mg/dL, ended by 15 minutes at or above" }),
    above_250: Episodes.annotate({
      description: "at least 15 minutes above 250 mg/dL, ended by 15 minutes at or below"
    })
  })
}).annotate({ identifier: "GlucoseStatistics" })
export type GlucoseStatisticsView = typeof GlucoseStatisticsView.Type

export class StatisticsGroup extends HttpApiGroup.make("statistics")
  .add(
    HttpApiEndpoint.get("get", "/statistics", {
      query: {
        from: IsoTimestamp,
        to: IsoTimestamp,
        sensor_id: Schema.optional(SensorId),
        units: Schema.optional(Units),
        tz: Schema.optional(TimeZone)
      },
      success: GlucoseStatisticsView,
      error: [ValidationError, ServiceUnavailable]
    }).annotateMerge(
      OpenApi.annotations({
        summary: `The caller's CGM statistics over [from, to) (at most ${MAX_STATISTICS_DAYS} days): time in ranges, mean, SD, CV, GMI, time CGM active, low and high episodes per sensor, and night (00:00-06:00 local time in tz, default UTC) and day apart`
      })
    )
  )
  .middleware(Caller)
  .annotate(RequiredScope, "glucose:read")
  .prefix("/api/v1")
  .annotateMerge(
    OpenApi.annotations({ title: "Statistics", description: "What clinicians read: the consensus CGM metrics" })
  ) {}
