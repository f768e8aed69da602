import { RequestValidation, ValidationError, type ValidationIssue } from "@dexmon/api"
import { Effect, SchemaIssue } from "effect"
import { HttpApiMiddleware } from "effect/http-api"

const formatIssues = SchemaIssue.makeFormatterStandardSchemaV1()

type Segment = PropertyKey | { readonly key: PropertyKey }
type Found = { readonly path: ReadonlyArray<Segment>; readonly message: string }

/**
 * Collects the leaf issues of a decoding failure. Where a value matched none
 * of the alternatives of a union (a single reading or a batch), only the
 * alternative the client evidently meant is reported: the one with the fewest
 * missing fields. Reporting all of them would tell a client that posted a
 * batch that `sensor_id` is missing.
 */
const collect = (issue: SchemaIssue.Issue, prefix: ReadonlyArray<Segment>): ReadonlyArray<Found> => {
  switch (issue._tag) {
    case "Pointer":
      return collect(issue.issue, [...prefix, ...issue.path])
    case "Composite":
      return issue.issues.flatMap((child) => collect(child, prefix))
    case "AnyOf": {
      if (issue.issues.length === 0) return formatLeaves(issue, prefix)
      const candidates = issue.issues.map((child) => collect(child, prefix))
      const missing = (found: ReadonlyArray<Found>) => found.filter((f) => f.message === "Missing key").length
      return candidates.reduce((best, next) => (missing(next) < missing(best) ? next : best), candidates[0] ?? [])
    }
    default:
      return formatLeaves(issue, prefix)
  }
}

const formatLeaves = (issue: SchemaIssue.Issue, prefix: ReadonlyArray<Segment>): ReadonlyArray<Found> =>
  formatIssues(issue).issues.map((leaf) => ({ path: [...prefix, ...(leaf.path ?? [])], message: leaf.message }))

/** `readings[3].glucose_value`: the path of a bad value as a person would write it. */
const formatPath = (path: ReadonlyArray<Segment>): string =>
  path
    .map((segment) => (typeof segment === "object" && segment !== null && "key" in segment ? segment.key : segment))
    .reduce<string>(
      (text, key) =>
        typeof key === "number" ? `${text}[${key}]` : text === "" ? String(key) : `${text}.${String(key)}`,
      ""
    )

/**
 * Every request that fails decoding is answered 400 with each bad field named.
 * The request is refused whole: handlers never see it, so nothing is produced.
 */
export const RequestValidationLive = HttpApiMiddleware.layerSchemaErrorTransform(RequestValidation, (error) => {
  if (error.kind === "Body" || error.kind === "ResponseHeaders") return Effect.fail(error)
  const where = error.kind.toLowerCase()
  const issues: Array<ValidationIssue> = collect(error.cause.issue, []).map((issue) => ({
    path: formatPath(issue.path) || where,
    message: issue.message
  }))
  return Effect.fail(
    new ValidationError({
      message: `invalid request ${where}: ${issues.map((i) => `${i.path}: ${i.message}`).join("; ")}`,
      issues
    })
  )
})
