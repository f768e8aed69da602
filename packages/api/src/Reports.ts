import { IsoTimestamp, SensorId, TimeZone } from "@dexmon/domain"
import { Units } from "@dexmon/statistics"
import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import { ServiceUnavailable, ValidationError } from "./Errors.ts"
import { Caller, RequiredScope } from "./Middleware.ts"

/** The AGP's window: 14 days unless asked otherwise (the consensus's minimum for a sound profile), 90 at most. */
export const AGP_DEFAULT_DAYS = 14
export const AGP_MAX_DAYS = 90

/** An SVG document, served as `image/svg+xml` and read by the SDK as its text. */
export const SvgDocument = Schema.String.pipe(HttpApiSchema.asText({ contentType: "image/svg+xml" })).annotate({
  description: "an SVG document"
})

export class ReportsGroup extends HttpApiGroup.make("reports")
  .add(
    HttpApiEndpoint.get("agp", "/reports/agp", {
      query: {
        from: Schema.optional(IsoTimestamp),
        to: Schema.optional(IsoTimestamp),
        sensor_id: Schema.optional(SensorId),
        units: Schema.optional(Units),
        tz: Schema.optional(TimeZone)
      },
      success: SvgDocument,
      error: [ValidationError, ServiceUnavailable]
    }).annotateMerge(
      OpenApi.annotations({
        summary: `The Ambulatory Glucose Profile of [from, to) as SVG: median, 25-75 % and 5-95 % by local time of day in tz (default UTC; 96 bins of 15 minutes), the target range 70-180 shaded, the time in ranges beside it. to defaults to now, from to ${AGP_DEFAULT_DAYS} days before to; at most ${AGP_MAX_DAYS} days`
      })
    )
  )
  .middleware(Caller)
  .annotate(RequiredScope, "glucose:read")
  .prefix("/api/v1")
  .annotateMerge(
    OpenApi.annotations({ title: "Reports", description: "Pictures for clinicians and for the person" })
  ) {}
