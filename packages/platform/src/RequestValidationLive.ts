import { RequestValidation, ValidationError, type ValidationIssue } from "@dexmon/api"
import { Effect, SchemaIssue } from "effect"
import { HttpApiMiddleware } from "effect/http-api"

const formatIssues = SchemaIssue.makeFormatterStandardSchemaV1()

type Segment = PropertyKey | { readonly key: PropertyKey }
type Found = { readonly path: ReadonlyArray<Segment>; readonly message: string }

/**
 * How little of an alternative's shape a value has: the share of the alternative's own top-level keys
 * that the value lacks (1 when it is not even an object). A value that lacks every key of an alternative
 * (a single reading has no `readings`) was evidently not meant as it; a value that lacks one of three
 * (a reading without `glucose_value`) was. Counting missing keys alone cannot tell these apart: both miss
 * exactly one.
 */
const shapeMismatch = (issue: SchemaIssue.Issue): number => {
  switch (issue._tag) {
    case "Composite": {
      if (issue.ast._tag !== "Objects" || issue.ast.propertySignatures.length === 0) return 0
      const missing = issue.issues.filter(
        (child) => child._tag === "Pointer" && child.path.length === 1 && child.issue._tag === "MissingKey"
      ).length
      return missing / issue.ast.propertySignatures.length
    }
    case "Pointer":
      return 0
    case "InvalidType":
      return 1
    default:
      return "issue" in issue ? shapeMismatch(issue.issue) : 0
  }
}

/**
 * Collects the leaf issues of a decoding failure. Where a value matched none
 * of the alternatives of a union (a single reading or a batch), only the
 * alternative the client evidently meant is reported: the one whose shape the
 * value has most of (see `shapeMismatch`), then the one with the fewest
 * issues. Reporting all of them would tell a client that posted a batch that
 * `sensor_id` is missing, and one that posted a reading without
 * `glucose_value` that `readings` is.
 */
const collect = (issue: SchemaIssue.Issue, prefix: ReadonlyArray<Segment>): ReadonlyArray<Found> => {
  switch (issue._tag) {
    case "Pointer":
      return collect(issue.issue, [...prefix, ...issue.path])
    case "Composite":
      return issue.issues.flatMap((child) => collect(child, prefix))
    case "AnyOf": {
      if (issue.issues.length === 0) return formatLeaves(issue, prefix)
      const candidates = issue.issues.map((child) => ({
        mismatch: shapeMismatch(child),
        found: collect(child, prefix)
      }))
      const better = (a: (typeof candidates)[number], b: (typeof candidates)[number]) =>
        a.mismatch !== b.mismatch ? a.mismatch < b.mismatch : a.found.length < b.found.length
      return candidates.reduce((best, next) => (better(next, best) ? next : best)).found
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
 * Every request that fails decoding is answered 400 naming the bad fields (at most
 * `MAX_REPORTED_ISSUES` of them, the message counting the rest).
 * The request is refused whole: handlers never see it, so nothing is produced.
 */
export const RequestValidationLive = HttpApiMiddleware.layerSchemaErrorTransform(RequestValidation, (error) => {
  if (error.kind === "Body" || error.kind === "ResponseHeaders") return Effect.fail(error)
  const where = error.kind.toLowerCase()
  const issues: Array<ValidationIssue> = collect(error.cause.issue, []).map((issue) => ({
    path: formatPath(issue.path) || where,
    message: issue.message
  }))
  return Effect.fail(ValidationError.fromIssues(where, issues))
})
