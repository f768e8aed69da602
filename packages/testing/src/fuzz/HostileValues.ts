/**
 * The values the fuzzer puts where a valid one belongs: boundaries of the documented schema,
 * wrong types, oversize values and strings written to break a parser, a query or a header.
 * Each carries a label, so a finding says which value caused it.
 */

/** JSON text sent exactly as written, for what `JSON.stringify` cannot express (NaN, duplicate keys, depth). */
export class RawJson {
  readonly text: string
  constructor(text: string) {
    this.text = text
  }
}

/** The field is left out. */
export const Absent: unique symbol = Symbol.for("dexmon/fuzz/Absent")
export type Absent = typeof Absent

export type FuzzValue = unknown

export interface Mutation {
  readonly label: string
  readonly value: FuzzValue
}

/** A JSON schema as found in an OpenAPI 3.1 document (only what the fuzzer reads). */
export interface JsonSchema {
  readonly $ref?: string
  readonly type?: string | ReadonlyArray<string>
  readonly enum?: ReadonlyArray<unknown>
  readonly format?: string
  readonly pattern?: string
  readonly minimum?: number
  readonly maximum?: number
  readonly minLength?: number
  readonly maxLength?: number
  readonly minItems?: number
  readonly maxItems?: number
  readonly properties?: Record<string, JsonSchema>
  readonly required?: ReadonlyArray<string>
  readonly items?: JsonSchema
  readonly anyOf?: ReadonlyArray<JsonSchema>
  readonly oneOf?: ReadonlyArray<JsonSchema>
  readonly additionalProperties?: boolean | JsonSchema
}

const KB = 1024
const huge = (size: number) => "A".repeat(size)
const deepArray = (depth: number) => new RawJson(`${"[".repeat(depth)}${"]".repeat(depth)}`)
const deepObject = (depth: number) => new RawJson(`${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`)

/** Strings aimed at SQL/CQL, paths, logs, headers, templates and Unicode handling. */
export const hostileStrings: ReadonlyArray<Mutation> = [
  { label: "empty string", value: "" },
  { label: "blank", value: "   " },
  { label: "SQL quote", value: "' OR '1'='1" },
  { label: "SQL statement", value: "x'); DROP TABLE glucose_readings; --" },
  { label: "CQL quote", value: "a' ALLOW FILTERING; --" },
  { label: "double quote and backslash", value: '"\\' },
  { label: "path traversal", value: "../../../../etc/passwd" },
  { label: "encoded traversal", value: "..%2F..%2F..%2Fetc%2Fpasswd" },
  { label: "percent-00", value: "abc%00def" },
  { label: "NUL character", value: "abc\u0000def" },
  { label: "CRLF injection", value: "x\r\nSet-Cookie: injected=1\r\n\r\n<html>" },
  { label: "HTML", value: "<script>alert(1)</script>" },
  // A log4j lookup and a template expression, for any layer that interpolates what it logs or renders.
  { label: "template", value: ["$", "{jndi:ldap://127.0.0.1/a}{{7*7}}"].join("") },
  { label: "prototype key", value: "__proto__" },
  { label: "constructor key", value: "constructor" },
  { label: "unicode", value: "𝔘ñí©ødé ☃ \u202e\ufeff\ud83d\ude00 日本語" },
  { label: "lone surrogate", value: "\ud800" },
  { label: "NaN-like", value: "NaN" },
  { label: "Infinity-like", value: "-Infinity" },
  { label: "number-like huge", value: "1e400" },
  { label: "null-like", value: "null" },
  { label: "string 4 KB", value: huge(4 * KB) },
  { label: "string 100 KB", value: huge(100 * KB) }
]

/** Values of every JSON type but the expected one, and numbers at the edges of what parsers accept. */
export const wrongTypes: ReadonlyArray<Mutation> = [
  { label: "null", value: null },
  { label: "true", value: true },
  { label: "zero", value: 0 },
  { label: "minus one", value: -1 },
  { label: "fraction", value: 0.5 },
  { label: "2^53", value: 2 ** 53 },
  { label: "-2^53", value: -(2 ** 53) },
  { label: "1e308", value: 1e308 },
  { label: "literal 1e400", value: new RawJson("1e400") },
  { label: "literal -0", value: new RawJson("-0") },
  { label: "literal 30-digit integer", value: new RawJson("123456789012345678901234567890") },
  { label: "literal NaN (invalid JSON)", value: new RawJson("NaN") },
  { label: "empty array", value: [] },
  { label: "empty object", value: {} },
  { label: "array of strings", value: ["a", "b"] },
  { label: "prototype pollution object", value: new RawJson('{"__proto__":{"polluted":true}}') },
  { label: "constructor pollution object", value: new RawJson('{"constructor":{"prototype":{"polluted":true}}}') },
  { label: "deep array (5000)", value: deepArray(5000) },
  { label: "deep object (5000)", value: deepObject(5000) }
]

const dateTimes: ReadonlyArray<Mutation> = [
  { label: "date-time impossible", value: "2026-13-45T25:61:61Z" },
  { label: "date-time year 0", value: "0000-01-01T00:00:00.000Z" },
  { label: "date-time negative year", value: "-000001-01-01T00:00:00.000Z" },
  { label: "date-time max", value: "+275760-09-13T00:00:00.000Z" },
  { label: "date-time beyond max", value: "+275760-09-13T00:00:00.001Z" },
  { label: "date-time epoch", value: "1970-01-01T00:00:00.000Z" },
  { label: "date-time far future", value: "9999-12-31T23:59:59.999Z" },
  { label: "date-time no zone", value: "2026-01-01T00:00:00" },
  { label: "date-time offset", value: "2026-01-01T00:00:00+14:00" },
  { label: "date-time nanoseconds", value: "2026-01-01T00:00:00.123456789Z" },
  { label: "date only", value: "2026-01-01" },
  { label: "epoch millis as string", value: "1767225600000" },
  { label: "leap second", value: "2016-12-31T23:59:60Z" }
]

const uuids: ReadonlyArray<Mutation> = [
  { label: "uuid nil", value: "00000000-0000-0000-0000-000000000000" },
  { label: "uuid max", value: "ffffffff-ffff-ffff-ffff-ffffffffffff" },
  { label: "uuid unknown", value: "0190f1c6-7b1e-7c4e-9a3b-5f2d1e0c9b8a" },
  { label: "uuid upper case", value: "0190F1C6-7B1E-7C4E-9A3B-5F2D1E0C9B8A" },
  { label: "uuid without dashes", value: "0190f1c67b1e7c4e9a3b5f2d1e0c9b8a" },
  { label: "uuid too long", value: "0190f1c6-7b1e-7c4e-9a3b-5f2d1e0c9b8a0" }
]

const numeric = (schema: JsonSchema): ReadonlyArray<Mutation> => {
  const out: Array<Mutation> = []
  const integer = schema.type === "integer"
  if (schema.minimum !== undefined) {
    out.push({ label: "minimum", value: schema.minimum })
    out.push({ label: "minimum - 1", value: schema.minimum - 1 })
    out.push({ label: "just below minimum", value: schema.minimum - 0.001 })
  }
  if (schema.maximum !== undefined) {
    out.push({ label: "maximum", value: schema.maximum })
    out.push({ label: "maximum + 1", value: schema.maximum + 1 })
    out.push({ label: "just above maximum", value: schema.maximum + 0.001 })
  }
  if (integer) out.push({ label: "fraction in range", value: (schema.minimum ?? 0) + 0.5 })
  out.push({ label: "number as string", value: String(schema.minimum ?? 1) })
  return out
}

/** Boundary values read from the schema itself: the documented limits, and one step past them. */
export const boundaries = (schema: JsonSchema, name: string): ReadonlyArray<Mutation> => {
  const out: Array<Mutation> = []
  const types = typeof schema.type === "string" ? [schema.type] : (schema.type ?? [])
  if (types.includes("number") || types.includes("integer")) out.push(...numeric(schema))
  if (types.includes("string") || schema.type === undefined) {
    if (schema.enum !== undefined) {
      out.push({ label: "enum lower case", value: String(schema.enum[0]).toLowerCase() })
      out.push({ label: "enum unknown", value: "NOT_A_VALUE" })
    }
    if (schema.minLength !== undefined && schema.minLength > 0) {
      out.push({ label: "minLength - 1", value: "a".repeat(schema.minLength - 1) })
    }
    if (schema.maxLength !== undefined) {
      out.push({ label: "maxLength", value: `https://example.com/${"a".repeat(Math.max(0, schema.maxLength - 20))}` })
      out.push({ label: "maxLength + 1", value: "a".repeat(schema.maxLength + 1) })
    }
    if (schema.format === "uuid" || /_id$/.test(name)) out.push(...uuids)
    if (schema.format === "date-time" || /^(from|to|timestamp|since|until)$|_at$/.test(name)) out.push(...dateTimes)
    if (/limit|minutes|count|size/.test(name)) {
      for (const value of ["0", "-1", "1", "1000", "1001", "9007199254740993", "1e3", "0x10", "1.5", " 5"]) {
        out.push({ label: `numeric string ${value}`, value })
      }
    }
  }
  if (types.includes("array")) {
    out.push({ label: "array empty", value: [] })
    out.push({ label: "array of nulls", value: [null, null] })
    if (schema.maxItems !== undefined)
      out.push({ label: "array maxItems + 1 of nulls", value: arrayOf(schema.maxItems + 1) })
    out.push({ label: "array of 10k", value: arrayOf(10_000) })
  }
  return out
}

const arrayOf = (count: number) => new RawJson(`[${Array.from({ length: count }, () => '"x"').join(",")}]`)

/** Crafted variants of a cursor the server issued: base64url JSON with its positions replaced. */
export const craftedCursors = (valid: string): ReadonlyArray<Mutation> => {
  const encode = (value: string) => Buffer.from(value).toString("base64url")
  const out: Array<Mutation> = [
    { label: "cursor truncated", value: valid.slice(0, Math.max(1, valid.length - 3)) },
    { label: "cursor not base64", value: "!!!***" },
    { label: "cursor base64 of garbage", value: encode("not json") },
    { label: "cursor JSON object", value: encode('{"a":1}') },
    { label: "cursor empty array", value: encode("[]") },
    { label: "cursor deep", value: encode(`${"[".repeat(5000)}${"]".repeat(5000)}`) },
    { label: "cursor 100 KB", value: encode(`["${huge(100 * KB)}"]`) }
  ]
  const position = parseJson(Buffer.from(valid, "base64url").toString("utf8"))
  if (position === undefined || position === null || typeof position !== "object") return out
  const replacements: ReadonlyArray<readonly [string, unknown]> = [
    ["huge number", 1e308],
    ["negative", -1],
    ["fraction", 0.5],
    ["2^53 + 2", 2 ** 53 + 2],
    // Epoch milliseconds JavaScript accepts but PostgreSQL cannot store, and one past the last Date.
    ["in the year 0000", Date.UTC(2000, 0, 1) - 2000 * 365.2425 * 86_400_000],
    ["past the last Date", 8.64e15 + 1],
    ["SQL quote", "' OR '1'='1"],
    ["bad date", "2026-13-45T25:61:61Z"],
    ["not a date", "yesterday"],
    ["empty string", ""],
    ["null", null],
    ["nested", [1, [2]]],
    ["huge string", huge(10 * KB)]
  ]
  // Every leaf of the position (an array of sort keys, or offsets by partition) replaced in turn.
  for (const path of leavesOf(position)) {
    for (const [label, replacement] of replacements) {
      out.push({
        label: `cursor ${path.join(".")} ${label}`,
        value: encode(JSON.stringify(replaceAt(position, path, replacement)))
      })
    }
  }
  if (Array.isArray(position)) {
    out.push({ label: "cursor extra position", value: encode(JSON.stringify([...position, 1])) })
    out.push({ label: "cursor literal 1e400", value: encode(`[${position.map(() => "1e400").join(",")}]`) })
  } else {
    for (const key of Object.keys(position)) {
      out.push({
        label: `cursor ${key} prototype key`,
        value: encode(
          `{${Object.entries(position)
            .map(([k, v]) => `${JSON.stringify(k)}:${k === key ? '{"__proto__":1}' : JSON.stringify(v)}`)
            .join(",")}}`
        )
      })
      out.push({
        label: `cursor ${key} huge partition`,
        value: encode(JSON.stringify({ ...position, [key]: { "999999999999": 1, "-1": 1 } }))
      })
    }
  }
  return out
}

const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

const leavesOf = (value: unknown, path: ReadonlyArray<string | number> = []): Array<ReadonlyArray<string | number>> => {
  if (Array.isArray(value)) return value.flatMap((item, index) => leavesOf(item, [...path, index]))
  if (value !== null && typeof value === "object") {
    return Object.entries(value).flatMap(([key, item]) => leavesOf(item, [...path, key]))
  }
  return [path]
}

const replaceAt = (value: unknown, path: ReadonlyArray<string | number>, replacement: unknown): unknown => {
  const [head, ...rest] = path
  if (head === undefined) return replacement
  if (Array.isArray(value))
    return value.map((item, index) => (index === head ? replaceAt(item, rest, replacement) : item))
  const record = value as Record<string, unknown>
  return { ...record, [head]: replaceAt(record[head], rest, replacement) }
}
