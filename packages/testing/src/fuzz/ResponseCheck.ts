import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js"
import formats from "ajv-formats"
import type { OpenApiDocument, Operation } from "./OpenApiDocument.ts"

// How an answer is judged against the document it came from: its status, its headers, its body's schema.

/**
 * Statuses any operation may answer without documenting them, because a layer in front of the
 * operation gives them before its handler runs:
 * - 400: a request the HTTP parser or the router cannot read at all (bad percent-encoding, a body
 *   that is not JSON);
 * - 401/403: authentication and scopes (documented on secured operations, generic on the others);
 * - 404: a path no route serves, including a path parameter that is empty or holds `/`;
 * - 405: a method the path does not have (a router may answer 404 instead, as Effect's does);
 * - 413: a body over the server's size limit;
 * - 415: a body whose content type the operation does not read;
 * - 429: the rate limiter;
 * - 431: headers over Node's limit, refused by its HTTP parser before DexMon sees the request.
 * Each of them must still carry a JSON error (`_tag`, `message`), except 431, which Node's
 * parser answers alone.
 */
export const genericStatuses: ReadonlyArray<number> = [400, 401, 403, 404, 405, 413, 415, 429, 431]
const bodylessGenericStatuses: ReadonlyArray<number> = [431]

export type FindingKind =
  | "server-error"
  | "undocumented-status"
  | "schema-mismatch"
  | "not-json"
  | "error-shape"
  | "missing-header"
  | "no-response"

export interface Answer {
  readonly status: number
  readonly contentType: string
  readonly headers: Headers
  readonly text: string
}

const documentId = "https://fuzz.dexmon.test/openapi.json"

/** The validators of one document: per (operation, status), the documented JSON schema. */
export const makeValidators = (document: OpenApiDocument) => {
  const ajv = new Ajv2020({ strict: false, allErrors: false, validateFormats: true })
  formats.default(ajv)
  ajv.addSchema({ $id: documentId, components: document.components ?? {} })
  const cache = new Map<string, ValidateFunction | undefined>()
  return (operation: Operation, status: string): ValidateFunction | undefined => {
    const key = `${operation.id} ${status}`
    if (!cache.has(key)) {
      const schema = operation.responses[status]?.content?.["application/json"]?.schema
      cache.set(key, schema === undefined ? undefined : ajv.compile(rebase(schema) as Record<string, unknown>))
    }
    return cache.get(key)
  }
}

/** Points `#/components/...` references at the document added under `documentId`. */
const rebase = (schema: unknown): unknown => {
  if (Array.isArray(schema)) return schema.map(rebase)
  if (schema !== null && typeof schema === "object") {
    return Object.fromEntries(
      Object.entries(schema).map(([key, value]) =>
        key === "$ref" && typeof value === "string" && value.startsWith("#/")
          ? [key, `${documentId}${value}`]
          : [key, rebase(value)]
      )
    )
  }
  return schema
}

export interface Problem {
  readonly kind: FindingKind
  readonly detail: string
}

/** What is wrong with one answer, if anything. */
export const judge = (
  operation: Operation,
  answer: Answer,
  validatorOf: (operation: Operation, status: string) => ValidateFunction | undefined
): Problem | undefined => {
  const status = String(answer.status)
  if (answer.status >= 500) return { kind: "server-error", detail: `status ${status}` }
  const documented = operation.responses[status]
  if (documented === undefined && !genericStatuses.includes(answer.status)) {
    return { kind: "undocumented-status", detail: `documented: ${Object.keys(operation.responses).join(", ")}` }
  }
  for (const [name, header] of Object.entries(documented?.headers ?? {})) {
    if (header.required === true && !answer.headers.has(name)) {
      return { kind: "missing-header", detail: `the documented header ${name} is missing` }
    }
  }
  const isJson = /^application\/(.+\+)?json\b/i.test(answer.contentType)
  const expectsJson = documented?.content?.["application/json"] !== undefined
  const isError = answer.status >= 400
  if (answer.status === 204 || answer.status === 304 || documented?.content?.["text/event-stream"] !== undefined) {
    return undefined
  }
  if (isError && bodylessGenericStatuses.includes(answer.status) && documented === undefined) return undefined
  if ((expectsJson || isError) && !isJson) {
    return { kind: "not-json", detail: `content-type ${JSON.stringify(answer.contentType)}, expected JSON` }
  }
  if (!isJson) return undefined
  let body: unknown
  try {
    body = JSON.parse(answer.text)
  } catch {
    return { kind: "not-json", detail: "the body does not parse as JSON" }
  }
  const validate = documented === undefined ? undefined : validatorOf(operation, status)
  if (validate !== undefined && !validate(body)) {
    const errors = (validate.errors ?? []).slice(0, 3).map((error) => `${error.instancePath || "/"} ${error.message}`)
    return { kind: "schema-mismatch", detail: errors.join("; ") }
  }
  if (isError) {
    const record = body !== null && typeof body === "object" ? (body as Record<string, unknown>) : {}
    if (typeof record._tag !== "string" || typeof record.message !== "string") {
      return { kind: "error-shape", detail: "an error body needs a string _tag and message" }
    }
  }
  return undefined
}
