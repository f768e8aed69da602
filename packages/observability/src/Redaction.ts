import { Layer } from "effect"
import { Headers, HttpMiddleware, UrlParams } from "effect/http"

/**
 * Query parameters whose values are secrets. DexMon's own API refuses
 * `?access_token=`, but a client may still send it, or `?token=`, `?api_key=`
 * and the like, and a webhook URL may carry one: the value is never recorded,
 * whether the request is served or refused. The last seven are Effect's
 * defaults (signed S3 and GCS URLs), which a custom list would otherwise drop.
 * The pattern catches the other spellings (`refresh_token`, `client_secret`,
 * `X-Api-Key`, `db_password`, ...): redacting one name too many costs nothing.
 */
export const secretQueryNames: ReadonlyArray<string | RegExp> = [
  "access_token",
  "token",
  "secret",
  "api_key",
  "api-key",
  "apikey",
  "password",
  "sig",
  "signature",
  "X-Amz-Signature",
  "X-Amz-Credential",
  "X-Amz-Security-Token",
  "AWSAccessKeyId",
  "Signature",
  "X-Goog-Signature",
  /token|secret|passw|api[-_]?key|signature|credential/i
]

/**
 * Headers whose values are secrets: the bearer token, Nightscout's
 * `api-secret`, cookies, API keys, and `dexmon-signature` (the HMAC a webhook
 * receiver checks).
 */
export const secretHeaderNames: ReadonlyArray<string | RegExp> = [
  "authorization",
  "proxy-authorization",
  "api-secret",
  "cookie",
  "set-cookie",
  "x-api-key",
  "dexmon-signature",
  /token|secret|passw|api[-_]?key|signature|credential/i
]

/**
 * Headers recorded on server spans: whether a credential came (recorded as
 * `<redacted>`, never its value) is what a refused request needs explained;
 * the others say what was sent and answered. All others stay off the spans.
 */
const tracedHeaders: Record<"request" | "response", ReadonlySet<string>> = {
  request: new Set([
    "authorization",
    "proxy-authorization",
    "api-secret",
    "x-api-key",
    "cookie",
    "content-type",
    "content-length"
  ]),
  response: new Set(["content-type", "www-authenticate", "retry-after", "set-cookie"])
}

/** `/api/v2/authorization/request/<token>`, in any case and with repeated slashes, as the router matches it. */
const tokenInPath = /^\/+api\/+v2\/+authorization\/+request\//i

/**
 * A request target as the router reads its path: without an absolute form's `scheme://host` (what a request
 * through a forward proxy carries), with `%xx` escapes decoded (one by one, so a malformed one stays).
 */
const routedTarget = (url: string): string =>
  url
    .replace(/^[a-z][a-z\d+.-]*:\/\/[^/?#]*/i, "")
    .replace(/%([0-9a-f]{2})/gi, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)))

/** Whether a request's path carries a secret (Nightscout's token exchange), however it is spelt. */
export const isSecretInPath = (url: string): boolean => tokenInPath.test(routedTarget(url))

/**
 * A request's path for a log line: without its query, and with the secret replaced when the path carries one (such
 * a path is never traced either).
 */
export const redactPath = (url: string): string =>
  isSecretInPath(url) ? "/api/v2/authorization/request/REDACTED" : (url.split(/[?#]/)[0] ?? "")

/**
 * What makes Effect's HTTP tracing leave secrets out: the server tracer
 * (every DexMon API) and the client tracer record `url.full` and `url.query`
 * with the values of `secretQueryNames` replaced by `REDACTED` and the headers
 * of `secretHeaderNames` as `<redacted>`; `Headers` and `UrlParams` print them
 * redacted too (in errors and logged causes). Installed by every HTTP server
 * (`layerHttpServer`) and for the whole of every service process (`runService`).
 */
export const RedactionLive = Layer.mergeAll(
  Layer.succeed(UrlParams.CurrentRedactedNames, secretQueryNames),
  Layer.succeed(Headers.CurrentRedactedNames, secretHeaderNames),
  Layer.succeed(HttpMiddleware.TracerHeaderFilter, (name: string, phase: "request" | "response") =>
    tracedHeaders[phase].has(name.toLowerCase())
  ),
  // Nightscout's token exchange carries the access token in the path, which the span's url.path would keep.
  Layer.succeed(HttpMiddleware.TracerDisabledWhen, (request) => isSecretInPath(request.url))
)

/**
 * A URL or connection string fit for a log line: user and password
 * (`postgres://user:pass@host`) become `REDACTED:REDACTED`, secret query
 * values `REDACTED`.
 */
export const redactUrl = (url: string): string => UrlParams.redactUrl(url, secretQueryNames)

const userinfo = /\b([a-z][a-z\d+.-]*:\/\/)[^\s/?#@"'<>]*@/gi
const secretAssignment =
  /([?&;\s"'(]|^)((?:access_token|token|secret|api[-_]?key|apikey|password|passwd|pwd|sig|signature|[\w.-]*(?:token|secret|password|api[-_]?key|signature|credential)[\w.-]*)=)[^&\s"'#;)]*/gi
const bearer = /\b(bearer|basic)\s+[\w\-.~+/=]+/gi

/**
 * Free text (a whole log line) with whatever looks like a secret blanked:
 * userinfo in URLs, `name=value` for secret names, and `Bearer`/`Basic`
 * credentials. The last line of defence for text that was built before it was
 * logged (an error's message, a library's warning), which no structured
 * redaction reaches.
 */
export const redactText = (text: string): string =>
  text
    .replace(userinfo, "$1REDACTED:REDACTED@")
    .replace(secretAssignment, "$1$2REDACTED")
    .replace(bearer, "$1 REDACTED")
