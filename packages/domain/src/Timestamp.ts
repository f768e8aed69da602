import { DateTime, Schema, SchemaGetter } from "effect"

const isoUtcPattern = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?(Z|\+00:00)$/

/**
 * An instant as the API writes it: ISO-8601 in UTC with at most millisecond
 * precision (`2026-11-24T08:15:00.000Z`), decoded to epoch milliseconds.
 * Offsets other than UTC are refused rather than converted, so a phone with a
 * wrong zone setting is told so instead of silently shifting a reading.
 */
export const IsoTimestamp = Schema.String.check(
  Schema.isPattern(isoUtcPattern, {
    message: "must be an ISO-8601 UTC timestamp such as 2026-11-24T08:15:00.000Z"
  }),
  Schema.makeFilter((text: string) => {
    // Only a well-formed timestamp can name a day that does not exist; the pattern reports the rest.
    if (!isoUtcPattern.test(text)) return true
    // ISO-8601's year 0000 is 1 BC to JavaScript but out of range to PostgreSQL, whose store
    // query would fail with a 5xx: it is refused here, where the request is still a 400.
    if (text.startsWith("0000")) return "must be in the year 0001 or later"
    const millis = Date.parse(text)
    // Date.parse rolls 2026-02-30 over to March; a calendar date must read back unchanged.
    return (
      (!Number.isNaN(millis) && new Date(millis).toISOString().slice(0, 10) === text.slice(0, 10)) ||
      "is not a valid calendar date"
    )
  })
).pipe(
  Schema.decodeTo(Schema.Int, {
    decode: SchemaGetter.transform((text: string) => Date.parse(text)),
    encode: SchemaGetter.transform((millis: number) => DateTime.formatIso(DateTime.makeUnsafe(millis)))
  })
)

/** Formats epoch milliseconds the way the API writes instants. */
export const formatIsoTimestamp = (millis: number): string => DateTime.formatIso(DateTime.makeUnsafe(millis))
