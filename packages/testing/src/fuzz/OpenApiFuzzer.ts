import { Effect } from "effect"
import {
  Absent,
  boundaries,
  craftedCursors,
  hostileStrings,
  type JsonSchema,
  type Mutation,
  RawJson,
  wrongTypes
} from "./HostileValues.ts"
import { derefWith, type OpenApiDocument, type Operation, operationsOf, type Parameter } from "./OpenApiDocument.ts"
import { makePrng, type Prng } from "./Prng.ts"
import { type Answer, type FindingKind, judge, makeValidators, type Problem } from "./ResponseCheck.ts"

export type { OpenApiDocument } from "./OpenApiDocument.ts"
export { type FindingKind, genericStatuses } from "./ResponseCheck.ts"

/**
 * An OpenAPI-driven fuzzer: it reads the document a server publishes, sends every operation
 * valid, boundary, wrong-type, oversize and hostile values in every parameter, header and body
 * field (plus malformed bodies, wrong content types and bad credentials), and checks each answer
 * against the same document. A server passes when no answer is a 5xx, no status is one the
 * operation does not document (beyond the generic refusals of `ResponseCheck`), and every JSON
 * body matches the schema documented for its status.
 */

export interface FuzzOptions {
  readonly baseUrl: string
  readonly document: OpenApiDocument
  readonly seed: number
  /** Headers every request carries unless the case is about them (credentials). */
  readonly headers?: Record<string, string>
  /**
   * Valid values by parameter or body field name (ids of seeded items, timestamps), the first one
   * used; a key prefixed with an operation (`"DELETE /api/v1/webhooks/{webhook_id} webhook_id"`)
   * applies to that operation only.
   */
  readonly examples?: Record<string, ReadonlyArray<unknown>>
  /** Random multi-field cases per operation, beyond one case per (field, value). Default 30. */
  readonly randomCasesPerOperation?: number
  /** At most this many cases per operation (a seeded sample of them). Default 400. */
  readonly maxCasesPerOperation?: number
  readonly concurrency?: number
  /** Operations (`"GET /path"`) not to fuzz. */
  readonly skip?: ReadonlyArray<string>
  /** Milliseconds to wait for an answer before reporting the request as unanswered. Default 20 000. */
  readonly timeoutMillis?: number
}

export interface FuzzCase {
  readonly operation: string
  readonly label: string
  readonly method: string
  readonly url: string
  readonly headers: Record<string, string>
  readonly body?: string
}

export interface FuzzFinding {
  readonly operation: string
  readonly kind: FindingKind
  readonly status: number
  /** How many requests ended in this (operation, status, kind). */
  readonly count: number
  readonly request: string
  readonly response: string
  readonly detail: string
}

export interface FuzzReport {
  readonly requests: number
  readonly operations: ReadonlyArray<string>
  readonly statuses: Record<string, number>
  readonly findings: ReadonlyArray<FuzzFinding>
  /** A readable summary: counts, then each finding with an example request and response. */
  readonly summary: string
}

/** A valid value for a schema: the caller's example for the name, else one built from the schema. */
const validValue = (
  schema: JsonSchema,
  name: string,
  deref: (schema: JsonSchema) => JsonSchema,
  examples: Record<string, ReadonlyArray<unknown>>,
  prng: Prng,
  depth = 0
): unknown => {
  const example = examples[name]
  if (example !== undefined && example.length > 0) return example[0]
  const resolved = deref(schema)
  const variants = resolved.anyOf ?? resolved.oneOf
  if (variants !== undefined) {
    const useful = variants.filter((variant) => deref(variant).type !== "null")
    return validValue(useful[0] ?? {}, name, deref, examples, prng, depth)
  }
  if (resolved.enum !== undefined) return resolved.enum[0]
  const type = Array.isArray(resolved.type) ? resolved.type[0] : resolved.type
  switch (type) {
    case "object": {
      const out: Record<string, unknown> = {}
      for (const [key, property] of Object.entries(resolved.properties ?? {})) {
        if (depth < 6) out[key] = validValue(property, key, deref, examples, prng, depth + 1)
      }
      return out
    }
    case "array":
      return resolved.items === undefined
        ? []
        : Array.from({ length: Math.max(1, resolved.minItems ?? 1) }, () =>
            validValue(resolved.items ?? {}, name, deref, examples, prng, depth + 1)
          )
    case "integer":
      return Math.ceil(((resolved.minimum ?? 1) + (resolved.maximum ?? resolved.minimum ?? 1)) / 2)
    case "number":
      return ((resolved.minimum ?? 1) + (resolved.maximum ?? resolved.minimum ?? 1)) / 2
    case "boolean":
      return true
    default:
      if (resolved.format === "uuid") return "0190f1c6-7b1e-7c4e-9a3b-5f2d1e0c9b8a"
      return `fuzz-${prng.int(1_000_000)}`
  }
}

/** JSON text for a value that may hold raw fragments (`RawJson`) or absent fields. */
const toJson = (value: unknown): string => {
  if (value instanceof RawJson) return value.text
  if (Array.isArray(value)) return `[${value.map((item) => (item === Absent ? "null" : toJson(item))).join(",")}]`
  if (value !== null && typeof value === "object") {
    const fields = Object.entries(value).filter(([, field]) => field !== Absent)
    return `{${fields.map(([key, field]) => `${JSON.stringify(key)}:${toJson(field)}`).join(",")}}`
  }
  return JSON.stringify(value) ?? "null"
}

/** What a value becomes in a URL or a header, where everything is a string. */
const asText = (value: unknown): string | Absent => {
  if (value === Absent) return Absent
  if (value instanceof RawJson) return value.text
  if (typeof value === "string") return value
  return toJson(value)
}

/** A body field: where it is (keys from the body's root) and its schema. */
interface Field {
  readonly path: ReadonlyArray<string | number>
  readonly name: string
  readonly schema: JsonSchema
}

const fieldsOf = (
  schema: JsonSchema,
  deref: (schema: JsonSchema) => JsonSchema,
  path: ReadonlyArray<string | number> = [],
  depth = 0
): Array<Field> => {
  const resolved = deref(schema)
  if (depth > 4) return []
  const variant = (resolved.anyOf ?? resolved.oneOf)?.find((candidate) => deref(candidate).type !== "null")
  if (variant !== undefined) return fieldsOf(variant, deref, path, depth)
  if (resolved.type === "object") {
    return Object.entries(resolved.properties ?? {}).flatMap(([key, property]) => [
      { path: [...path, key], name: key, schema: deref(property) },
      ...fieldsOf(property, deref, [...path, key], depth + 1)
    ])
  }
  if (resolved.type === "array" && resolved.items !== undefined)
    return fieldsOf(resolved.items, deref, [...path, 0], depth + 1)
  return []
}

const setAt = (root: unknown, path: ReadonlyArray<string | number>, value: unknown): unknown => {
  if (path.length === 0) return value
  const [head, ...rest] = path as [string | number, ...Array<string | number>]
  if (Array.isArray(root)) {
    const copy = [...root]
    copy[head as number] = setAt(copy[head as number], rest, value)
    return copy
  }
  const base = root !== null && typeof root === "object" ? (root as Record<string, unknown>) : {}
  return { ...base, [head]: setAt(base[head], rest, value) }
}

/** The values tried in one field: its boundaries, then hostile strings and wrong types. */
const mutationsFor = (schema: JsonSchema, name: string, valid: unknown): Array<Mutation> => {
  const cursor = /cursor|last-event-id/i.test(name) && typeof valid === "string" ? craftedCursors(valid) : []
  return [{ label: "absent", value: Absent }, ...boundaries(schema, name), ...cursor, ...hostileStrings, ...wrongTypes]
}

/** One request before it is sent: the valid values of every place, each of which a mutation may replace. */
interface Draft {
  readonly label: string
  readonly pathParams: Record<string, unknown>
  readonly query: Record<string, unknown>
  readonly headers: Record<string, unknown>
  readonly body: unknown
  readonly rawBody?: string
  readonly contentType?: string | Absent
}

const headerSafe = (value: string) => /^[\t\x20-\x7e\x80-\xff]*$/.test(value)

const render = (operation: Operation, draft: Draft, baseUrl: string): FuzzCase | undefined => {
  let path = operation.path
  for (const [name, value] of Object.entries(draft.pathParams)) {
    const text = asText(value)
    path = path.replace(`{${name}}`, text === Absent ? "" : encodeURIComponent(text.toWellFormed()))
  }
  const search = new URLSearchParams()
  for (const [name, value] of Object.entries(draft.query)) {
    if (value === Absent) continue
    // An array in the query is the parameter repeated, as a form would send it.
    if (Array.isArray(value)) for (const item of value) search.append(name, String(asText(item)))
    else search.append(name, String(asText(value)))
  }
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(draft.headers)) {
    const text = asText(value)
    if (text === Absent) continue
    // fetch refuses to send CR, LF or NUL in a header; such values travel in the query and the body instead.
    if (!headerSafe(text)) return undefined
    headers[name] = text
  }
  let body: string | undefined
  if (draft.rawBody !== undefined) body = draft.rawBody
  else if (operation.body !== undefined && draft.body !== Absent) body = toJson(draft.body)
  if (body !== undefined) {
    if (draft.contentType === undefined) headers["content-type"] = "application/json"
    else if (draft.contentType !== Absent) headers["content-type"] = draft.contentType
  }
  const query = search.toString()
  return {
    operation: operation.id,
    label: draft.label,
    method: operation.method,
    url: `${baseUrl}${path}${query === "" ? "" : `?${query}`}`,
    headers,
    ...(body === undefined ? {} : { body })
  }
}

/** Every case for one operation: one per (place, value), body-level breakage, credentials, then random mixes. */
const casesFor = (operation: Operation, options: FuzzOptions, deref: (s: JsonSchema) => JsonSchema, prng: Prng) => {
  // `"POST /api/v1/webhooks url"` names a value for one operation only; it wins over a plain `url`.
  const examples: Record<string, ReadonlyArray<unknown>> = { ...options.examples }
  for (const [key, values] of Object.entries(options.examples ?? {})) {
    if (key.startsWith(`${operation.id} `)) examples[key.slice(operation.id.length + 1)] = values
  }
  const params = (place: Parameter["in"]) => operation.parameters.filter((parameter) => parameter.in === place)
  const validOf = (parameter: Parameter) => {
    const value = validValue(parameter.schema ?? {}, parameter.name, deref, examples, prng)
    return parameter.required === true ? value : (examples[parameter.name]?.[0] ?? value)
  }
  const fromParams = (place: Parameter["in"]) =>
    Object.fromEntries(params(place).map((parameter) => [parameter.name, validOf(parameter)]))
  const body = operation.body === undefined ? Absent : validValue(operation.body.schema, "", deref, examples, prng)
  const valid: Draft = {
    label: "valid",
    pathParams: fromParams("path"),
    query: Object.fromEntries(
      params("query")
        .filter((parameter) => parameter.required === true || examples[parameter.name] !== undefined)
        .map((parameter) => [parameter.name, validOf(parameter)])
    ),
    headers: { ...options.headers, ...fromParams("header") },
    body
  }
  const drafts: Array<Draft> = [valid]
  const single: Array<Draft> = []

  // Parameters: every value in every path, query and header parameter, the others valid.
  for (const parameter of operation.parameters) {
    const place = parameter.in === "path" ? "pathParams" : parameter.in === "query" ? "query" : "headers"
    for (const mutation of mutationsFor(parameter.schema ?? {}, parameter.name, validOf(parameter))) {
      single.push({
        ...valid,
        label: `${parameter.in} ${parameter.name} = ${mutation.label}`,
        [place]: { ...valid[place], [parameter.name]: mutation.value }
      })
    }
    if (parameter.in === "query") {
      single.push({
        ...valid,
        label: `query ${parameter.name} repeated`,
        query: { ...valid.query, [parameter.name]: [validOf(parameter), "' OR 1=1"] }
      })
    }
  }

  // Body: every value in every field, then the body broken as a whole.
  if (operation.body !== undefined) {
    // A body that is one of several shapes (a batch or a single reading) has each shape fuzzed.
    const root = deref(operation.body.schema)
    const shapes = (root.anyOf ?? root.oneOf ?? [root]).filter((shape) => deref(shape).type !== "null")
    for (const [index, shape] of shapes.entries()) {
      const base = index === 0 ? body : validValue(shape, "", deref, examples, prng)
      const prefix = shapes.length > 1 ? `body (shape ${index + 1})` : "body"
      for (const field of fieldsOf(shape, deref)) {
        for (const mutation of mutationsFor(field.schema, field.name, undefined)) {
          single.push({
            ...valid,
            label: `${prefix} ${field.path.join(".")} = ${mutation.label}`,
            body: setAt(base, field.path, mutation.value)
          })
        }
      }
    }
    const text = toJson(body)
    const inner = text.startsWith("{") && text.length > 2 ? text.slice(1, -1) : undefined
    const firstKey = Object.keys(typeof body === "object" && body !== null ? body : {})[0]
    const raws: ReadonlyArray<readonly [string, string]> = [
      ["empty body", ""],
      ["malformed JSON", "{"],
      ["truncated JSON", text.slice(0, Math.max(1, text.length - 2))],
      ["JSON null", "null"],
      ["JSON array", "[]"],
      ["JSON string", '"text"'],
      ["JSON number", "42"],
      ["trailing garbage", `${text}xyz`],
      ["two documents", `${text}${text}`],
      ["byte order mark", `\ufeff${text}`],
      ["single quotes", text.replaceAll('"', "'")],
      ["comment", `/* c */${text}`],
      ["deep array (100k)", `${"[".repeat(100_000)}${"]".repeat(100_000)}`],
      ["deep object (10k)", `${'{"a":'.repeat(10_000)}1${"}".repeat(10_000)}`],
      ["array of 10k bodies", `[${Array.from({ length: 10_000 }, () => text).join(",")}]`],
      ["body of 2 MB", `{"pad":"${"A".repeat(2 * 1024 * 1024)}"}`],
      [
        "prototype pollution",
        inner === undefined ? '{"__proto__":{"admin":true}}' : `{"__proto__":{"admin":true},${inner}}`
      ],
      ["constructor pollution", inner === undefined ? "{}" : `{"constructor":{"prototype":{"admin":true}},${inner}}`],
      ["unknown field", inner === undefined ? '{"zzz":1}' : `{${inner},"user_id":"someone-else"}`],
      ...(inner !== undefined && firstKey !== undefined
        ? ([
            ["duplicate key, hostile second", `{${inner},${JSON.stringify(firstKey)}:"' OR '1'='1"}`],
            ["duplicate key, null second", `{${inner},${JSON.stringify(firstKey)}:null}`]
          ] as const)
        : [])
    ]
    for (const [label, raw] of raws) single.push({ ...valid, label: `raw body: ${label}`, rawBody: raw })
    const contentTypes: ReadonlyArray<string | Absent> = [
      Absent,
      "text/plain",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=x",
      "application/xml",
      "application/json; charset=utf-16",
      "application/json-patch+json",
      "application/jsonx",
      "APPLICATION/JSON",
      "*/*",
      ""
    ]
    for (const contentType of contentTypes) {
      single.push({
        ...valid,
        label: `content-type ${contentType === Absent ? "absent" : JSON.stringify(contentType)}`,
        contentType
      })
    }
    single.push({ ...valid, label: "body absent", body: Absent })
  } else if (operation.method !== "GET" && operation.method !== "HEAD") {
    // fetch sends no body with GET or HEAD; the other methods get one they do not declare.
    single.push({ ...valid, label: "unexpected JSON body", rawBody: '{"unexpected":true}' })
    single.push({ ...valid, label: "unexpected malformed body", rawBody: "{", contentType: "text/plain" })
  }

  // Credentials, on secured operations: none, malformed, and a good one spoiled.
  if (operation.secured && options.headers?.authorization !== undefined) {
    const token = options.headers.authorization.replace(/^Bearer /, "")
    const spoiled: ReadonlyArray<readonly [string, unknown]> = [
      ["absent", Absent],
      ["empty", ""],
      ["scheme only", "Bearer"],
      ["scheme and space", "Bearer "],
      ["lower-case scheme", `bearer ${token}`],
      ["Basic", "Basic YWxpY2U6c2VjcmV0"],
      ["garbage", "Bearer not-a-jwt"],
      ["signature cut", `Bearer ${token.slice(0, -10)}`],
      ["signature flipped", `Bearer ${token.slice(0, -2)}${token.endsWith("A") ? "BB" : "AA"}`],
      ["two tokens", `Bearer ${token}, Bearer ${token}`],
      ["three dots", "Bearer a.b.c"],
      ["base64 of JSON garbage", `Bearer ${Buffer.from('{"alg":"none"}').toString("base64url")}.e30.`],
      ["token of 6 KB", `Bearer ${"A".repeat(6 * 1024)}`],
      ["token of 100 KB", `Bearer ${"A".repeat(100 * 1024)}`]
    ]
    for (const [label, value] of spoiled) {
      single.push({ ...valid, label: `authorization ${label}`, headers: { ...valid.headers, authorization: value } })
    }
  }
  if (options.headers?.["x-user-id"] !== undefined) {
    for (const mutation of hostileStrings) {
      single.push({
        ...valid,
        label: `x-user-id = ${mutation.label}`,
        headers: { ...valid.headers, "x-user-id": mutation.value }
      })
    }
  }

  // Random mixes: two or three single mutations applied together.
  const mixes: Array<Draft> = []
  for (let i = 0; i < (options.randomCasesPerOperation ?? 30) && single.length > 1; i++) {
    const parts = prng.sample(single, 2 + prng.int(2))
    mixes.push(
      parts.reduce<Draft>(
        (merged, part) => ({
          label: merged.label === "" ? part.label : `${merged.label} + ${part.label}`,
          pathParams: { ...merged.pathParams, ...diff(part.pathParams, valid.pathParams) },
          query: { ...merged.query, ...diff(part.query, valid.query) },
          headers: { ...merged.headers, ...diff(part.headers, valid.headers) },
          body: part.body !== valid.body ? part.body : merged.body,
          ...(part.rawBody !== undefined
            ? { rawBody: part.rawBody }
            : merged.rawBody !== undefined
              ? { rawBody: merged.rawBody }
              : {}),
          ...(part.contentType !== undefined
            ? { contentType: part.contentType }
            : merged.contentType !== undefined
              ? { contentType: merged.contentType }
              : {})
        }),
        { ...valid, label: "" }
      )
    )
  }
  drafts.push(...single, ...mixes)
  const limit = options.maxCasesPerOperation ?? 400
  const chosen = drafts.length <= limit ? drafts : [valid, ...prng.sample(drafts.slice(1), limit - 1)]
  return chosen.flatMap((draft) => {
    const rendered = render(operation, draft, options.baseUrl)
    return rendered === undefined ? [] : [rendered]
  })
}

const diff = (changed: Record<string, unknown>, base: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(changed).filter(([key, value]) => base[key] !== value))

/** Every request the fuzzer sends for a document, in order; the same seed gives the same list. */
export const generateCases = (options: FuzzOptions): Array<FuzzCase> => {
  const prng = makePrng(options.seed)
  const deref = derefWith(options.document)
  return [
    ...operationsOf(options.document)
      .filter((operation) => !(options.skip ?? []).includes(operation.id))
      .flatMap((operation) => casesFor(operation, options, deref, prng)),
    ...strayCases(options, prng)
  ]
}

/**
 * Requests no operation declares: two other methods on each declared path, and paths nothing
 * serves. They may only get a generic refusal (404, 405, ...), as a JSON error like any other.
 */
const strayCases = (options: FuzzOptions, prng: Prng): Array<FuzzCase> => {
  const json = { ...options.headers, "content-type": "application/json" }
  const stray = (method: string, path: string, label: string): FuzzCase => ({
    // One name for all of them: a finding here has one cause, whatever the path.
    operation: `(${label})`,
    label,
    method,
    url: `${options.baseUrl}${path}`,
    headers: method === "GET" ? { ...options.headers } : json,
    ...(method === "GET" ? {} : { body: "{}" })
  })
  const out: Array<FuzzCase> = []
  for (const [path, item] of Object.entries(options.document.paths)) {
    const declared = Object.keys(item).map((method) => method.toUpperCase())
    const others = ["GET", "POST", "PUT", "PATCH", "DELETE"].filter((method) => !declared.includes(method))
    // Path parameters get a plausible value, so the method (not the parameter) is what is wrong.
    const concrete = path.replace(/\{[^}]+\}/g, "0190f1c6-7b1e-7c4e-9a3b-5f2d1e0c9b8a")
    for (const method of prng.sample(others, 2)) out.push(stray(method, concrete, "method not declared"))
  }
  const unknownPaths = [
    "/api/v1/unknown",
    "/api/v2/readings",
    "/api/v1/readings%2F..%2F..%2Fetc%2Fpasswd",
    "/api/v1/%00",
    "/api/v1/%ZZ",
    `/api/v1/${"x/".repeat(200)}`,
    `/${"a".repeat(4096)}`
  ]
  for (const path of unknownPaths) {
    out.push(stray("GET", path, "path not served"), stray("POST", path, "path not served"))
  }
  return out
}

const excerpt = (text: string, size = 400) =>
  text.length <= size ? text : `${text.slice(0, size)}… (${text.length} chars)`

const describeCase = (fuzzCase: FuzzCase) =>
  `${fuzzCase.method} ${excerpt(fuzzCase.url, 300)} [${fuzzCase.label}]` +
  (fuzzCase.body === undefined
    ? ""
    : ` content-type=${fuzzCase.headers["content-type"] ?? "(none)"} body=${excerpt(fuzzCase.body, 200)}`)

const send = (fuzzCase: FuzzCase, timeoutMillis: number) =>
  Effect.tryPromise({
    try: async (signal): Promise<Answer> => {
      const response = await fetch(fuzzCase.url, {
        method: fuzzCase.method,
        headers: fuzzCase.headers,
        redirect: "manual",
        signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMillis)]),
        ...(fuzzCase.body === undefined ? {} : { body: fuzzCase.body })
      })
      const contentType = response.headers.get("content-type") ?? ""
      // A live stream never ends: its status and headers are the answer.
      if (contentType.startsWith("text/event-stream")) {
        await response.body?.cancel()
        return { status: response.status, contentType, headers: response.headers, text: "" }
      }
      return { status: response.status, contentType, headers: response.headers, text: await response.text() }
    },
    catch: (cause) => cause
  })

/**
 * Sends every generated case to `options.baseUrl` with bounded concurrency, judges each answer
 * against the document, and returns the findings deduplicated by (operation, status, kind), each
 * with the first request that produced it.
 */
export const fuzzOpenApi = Effect.fn("OpenApiFuzzer.run")(function* (options: FuzzOptions) {
  const operations = operationsOf(options.document).filter((operation) => !(options.skip ?? []).includes(operation.id))
  const byId = new Map(operations.map((operation) => [operation.id, operation]))
  const cases = generateCases(options)
  const validatorOf = makeValidators(options.document)
  const statuses: Record<string, number> = {}
  const findings = new Map<string, { -readonly [K in keyof FuzzFinding]: FuzzFinding[K] }>()
  const record = (fuzzCase: FuzzCase, status: number, problem: Problem, response: string) => {
    const key = `${fuzzCase.operation} ${status} ${problem.kind}`
    const known = findings.get(key)
    if (known !== undefined) known.count++
    else {
      findings.set(key, {
        operation: fuzzCase.operation,
        kind: problem.kind,
        status,
        count: 1,
        request: describeCase(fuzzCase),
        response: excerpt(response),
        detail: problem.detail
      })
    }
  }
  yield* Effect.forEach(
    cases,
    (fuzzCase) =>
      send(fuzzCase, options.timeoutMillis ?? 20_000).pipe(
        Effect.match({
          onFailure: (cause) =>
            record(fuzzCase, 0, { kind: "no-response", detail: String(cause) }, String((cause as Error)?.cause ?? "")),
          onSuccess: (answer) => {
            statuses[answer.status] = (statuses[answer.status] ?? 0) + 1
            // A request no operation declares is held to the generic statuses only.
            const operation = byId.get(fuzzCase.operation) ?? {
              id: fuzzCase.operation,
              method: fuzzCase.method,
              path: fuzzCase.url,
              parameters: [],
              body: undefined,
              responses: {},
              secured: false
            }
            const problem = judge(operation, answer, validatorOf)
            if (problem !== undefined) record(fuzzCase, answer.status, problem, answer.text)
          }
        })
      ),
    { concurrency: options.concurrency ?? 8, discard: true }
  )
  const list = [...findings.values()].sort((a, b) => a.operation.localeCompare(b.operation) || a.status - b.status)
  const summary = [
    `${cases.length} requests over ${operations.length} operations (seed ${options.seed}); statuses ${JSON.stringify(statuses)}`,
    `${list.length} finding(s)`,
    ...list.map(
      (finding, i) =>
        `#${i + 1} ${finding.kind} ${finding.operation} → ${finding.status} (${finding.count}×): ${finding.detail}\n` +
        `   request:  ${finding.request}\n   response: ${finding.response}`
    )
  ].join("\n")
  return {
    requests: cases.length,
    operations: operations.map((operation) => operation.id),
    statuses,
    findings: list,
    summary
  } satisfies FuzzReport
})
