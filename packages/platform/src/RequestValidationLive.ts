import { RequestValidation, ValidationError, type ValidationIssue } from "@dexmon/api"
import { Effect, SchemaIssue } from "effect"
import { HttpApiMiddleware } from "effect/http-api"

const formatIssues = SchemaIssue.makeFormatterStandardSchemaV1()

/** `readings[3].glucose_value`: the path of a bad value as a person would write it. */
const formatPath = (path: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }>): string =>
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
  const issues: Array<ValidationIssue> = formatIssues(error.cause.issue).issues.map((issue) => ({
    path: formatPath(issue.path ?? []) || where,
    message: issue.message
  }))
  return Effect.fail(
    new ValidationError({
      message: `invalid request ${where}: ${issues.map((i) => `${i.path}: ${i.message}`).join("; ")}`,
      issues
    })
  )
})
