import { gunzipSync } from "node:zlib"
import { ValidationError } from "@dexmon/api"
import { Effect } from "effect"
import { HttpIncomingMessage, HttpServerRequest } from "effect/http"

/** The body limit when the server does not set one: the same as `DEXMON_MAX_BODY_BYTES`'s default. */
const DEFAULT_MAX_BODY_BYTES = 1_048_576

/**
 * The JSON of an entries body, decompressed when it says `Content-Encoding: gzip`. The decompressed text may be
 * no longer than the body limit (`maxBytes`), so a small compressed body cannot expand without bound.
 */
export const decodeEntriesBody = (
  body: Uint8Array,
  contentEncoding: string | undefined,
  maxBytes: number
): { readonly _tag: "Json"; readonly value: unknown } | { readonly _tag: "Invalid"; readonly message: string } => {
  const encoding = (contentEncoding ?? "identity").trim().toLowerCase()
  let text: string
  if (encoding === "gzip" || encoding === "x-gzip") {
    try {
      text = gunzipSync(body, { maxOutputLength: maxBytes }).toString("utf8")
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      return {
        _tag: "Invalid",
        message:
          code === "ERR_BUFFER_TOO_LARGE"
            ? `the body decompresses to more than ${maxBytes} bytes`
            : "the body says Content-Encoding: gzip but is not valid gzip"
      }
    }
  } else if (encoding === "identity" || encoding === "") {
    text = new TextDecoder().decode(body)
  } else {
    return { _tag: "Invalid", message: `Content-Encoding ${encoding} is not supported; send gzip or none` }
  }
  try {
    return { _tag: "Json", value: JSON.parse(text) }
  } catch {
    return { _tag: "Invalid", message: "the body is not valid JSON" }
  }
}

/**
 * Each request's body as decoded, so a request whose credential is in its body is gunzipped and parsed once: by
 * the authentication, then handed to the handler (both see the same request object).
 */
const decodedBodies = new WeakMap<HttpServerRequest.HttpServerRequest, ReturnType<typeof decodeEntriesBody>>()

/** The JSON of the request's body (`payload`, its bytes), gzip-encoded or not; a 400 naming what is wrong with it. */
export const postedJson = Effect.fnUntraced(function* (payload: Uint8Array) {
  const request = yield* HttpServerRequest.HttpServerRequest
  let body = decodedBodies.get(request)
  if (body === undefined) {
    // The server sets the body limit (`DEXMON_MAX_BODY_BYTES`); a host that does not gets the same default.
    const limit = yield* HttpIncomingMessage.MaxBodySize
    const maxBytes = limit === undefined ? DEFAULT_MAX_BODY_BYTES : Number(limit)
    body = decodeEntriesBody(payload, request.headers["content-encoding"], maxBytes)
    decodedBodies.set(request, body)
  }
  if (body._tag === "Invalid") {
    return yield* ValidationError.fromIssues("payload", [{ path: "", message: body.message }])
  }
  return body.value
})

/** The fields of a posted body that carry a credential, as Nightscout reads them: never part of an entry. */
const CREDENTIAL_FIELDS = ["secret", "token"] as const
export type BodyCredentialForm = (typeof CREDENTIAL_FIELDS)[number]

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** Where Nightscout looks for a credential in a body: the object posted, or the first of an array. */
const credentialHolder = (body: unknown) => (Array.isArray(body) ? body[0] : body)

/**
 * The credential a posted body carries, as Nightscout takes it when the request has none in its headers or
 * query: a `secret` (the SHA-1 of the API secret, as in the header) or a `token` field of the object posted, or
 * of the first entry of an array.
 */
export const bodyCredential = (
  body: unknown
): { readonly form: BodyCredentialForm; readonly value: string } | undefined => {
  const holder = credentialHolder(body)
  if (!isRecord(holder)) return undefined
  for (const form of CREDENTIAL_FIELDS) {
    const value = holder[form]
    if (typeof value === "string" && value.trim() !== "") return { form, value: value.trim() }
  }
  return undefined
}

/**
 * The body without credential fields, as Nightscout deletes the one it read before it stores what was posted:
 * an entry's echo (which repeats every posted field) must never send a secret back. Taken from every entry, not
 * only where a credential is looked for: neither field is ever part of an entry.
 */
export const withoutCredentialFields = (body: unknown): unknown => {
  const clean = (item: unknown) => {
    if (!isRecord(item) || !CREDENTIAL_FIELDS.some((field) => field in item)) return item
    const { secret: _secret, token: _token, ...rest } = item
    return rest
  }
  if (!Array.isArray(body)) return clean(body)
  return body.some((item) => isRecord(item) && CREDENTIAL_FIELDS.some((field) => field in item))
    ? body.map(clean)
    : body
}
