import { Schema } from "effect"

/** Where a request value was wrong and why: `path` names the field, with the item index in a batch. */
export const ValidationIssue = Schema.Struct({
  path: Schema.String,
  message: Schema.String
})
export type ValidationIssue = typeof ValidationIssue.Type

/** Most issues a 400 names: a 1,000-item bad batch answers a small body, and its message counts the rest. */
export const MAX_REPORTED_ISSUES = 20

const MAX_ISSUE_TEXT = 200
const clip = (text: string) => (text.length > MAX_ISSUE_TEXT ? `${text.slice(0, MAX_ISSUE_TEXT)}...` : text)

/** 400: the request was refused as a whole and nothing was produced. */
export class ValidationError extends Schema.TaggedError<ValidationError>()(
  "ValidationError",
  {
    message: Schema.String,
    issues: Schema.Array(ValidationIssue)
  },
  { httpApiStatus: 400 }
) {
  /**
   * The one way every 400 is built from its issues: the first `MAX_REPORTED_ISSUES` are named, in the
   * message and in `issues`, and the message counts the rest, so the answer stays small whatever the input.
   */
  static fromIssues(where: string, issues: ReadonlyArray<ValidationIssue>): ValidationError {
    // A message may quote the value it refuses: a long one is cut, so a huge value is not echoed back.
    const shown = issues
      .slice(0, MAX_REPORTED_ISSUES)
      .map((issue) => ({ path: clip(issue.path), message: clip(issue.message) }))
    const rest = issues.length - shown.length
    const listed = shown.map((issue) => `${issue.path}: ${issue.message}`).join("; ")
    return new ValidationError({
      message: `invalid request ${where}: ${listed}${rest > 0 ? `; and ${rest} more issue${rest === 1 ? "" : "s"}` : ""}`,
      issues: shown
    })
  }
}

/** 404: no such resource for this caller. */
export class NotFound extends Schema.TaggedError<NotFound>()(
  "NotFound",
  { message: Schema.String },
  { httpApiStatus: 404 }
) {}

/** 304: the representation the client holds (`If-None-Match`) is still current; no body. */
export class NotModified extends Schema.TaggedError<NotModified>()("NotModified", {}, { httpApiStatus: 304 }) {}

/** 503: a store the request needs is unreachable; the client may retry, nothing was accepted. */
export class ServiceUnavailable extends Schema.TaggedError<ServiceUnavailable>()(
  "ServiceUnavailable",
  { message: Schema.String },
  { httpApiStatus: 503 }
) {}

/** 403: the caller is known but may not do this (a missing scope, or another user's sensor); nothing changed. */
export class Forbidden extends Schema.TaggedError<Forbidden>()(
  "Forbidden",
  { message: Schema.String },
  { httpApiStatus: 403 }
) {}

/** 429: the caller's rate limit is spent; the response carries `Retry-After` in seconds. */
export class TooManyRequests extends Schema.TaggedError<TooManyRequests>()(
  "TooManyRequests",
  { message: Schema.String, retry_after_seconds: Schema.Int },
  { httpApiStatus: 429 }
) {}

/** 412: the `If-Match` names a version of the resource that is no longer current; nothing changed. */
export class PreconditionFailed extends Schema.TaggedError<PreconditionFailed>()(
  "PreconditionFailed",
  { message: Schema.String },
  { httpApiStatus: 412 }
) {}

/** 428: the resource exists and may only be replaced with an `If-Match` naming the version read; nothing changed. */
export class PreconditionRequired extends Schema.TaggedError<PreconditionRequired>()(
  "PreconditionRequired",
  { message: Schema.String },
  { httpApiStatus: 428 }
) {}
