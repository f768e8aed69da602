import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import { freePort } from "@dexmon/ports"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { fuzzOpenApi, generateCases, type OpenApiDocument } from "../src/index.ts"

/** A document of two operations, the shape of DexMon's: a list with a cursor and a create with a JSON body. */
const document: OpenApiDocument = {
  openapi: "3.1.0",
  paths: {
    "/items/{item_id}": {
      get: {
        parameters: [
          { name: "item_id", in: "path", required: true, schema: { type: "string" } },
          { name: "limit", in: "query", required: false, schema: { type: "string" } }
        ],
        responses: {
          "200": { content: { "application/json": { schema: { $ref: "#/components/schemas/Item" } } } },
          "400": { content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } }
        }
      }
    },
    "/items": {
      post: {
        requestBody: {
          required: true,
          content: {
            "application/json": {
              schema: {
                type: "object",
                properties: { name: { type: "string" }, size: { type: "integer", minimum: 1, maximum: 10 } },
                required: ["name", "size"],
                additionalProperties: false
              }
            }
          }
        },
        responses: {
          "201": { content: { "application/json": { schema: { $ref: "#/components/schemas/Item" } } } },
          "400": { content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } }
        }
      }
    }
  },
  components: {
    schemas: {
      Item: {
        type: "object",
        properties: { id: { type: "string" }, size: { type: "integer" } },
        required: ["id", "size"]
      },
      Error: {
        type: "object",
        properties: { _tag: { type: "string" }, message: { type: "string" } },
        required: ["_tag", "message"]
      }
    }
  }
}

type Flaw =
  | "none"
  | "crashes on a quote"
  | "breaks its schema"
  | "untagged error"
  | "undocumented status"
  | "plain-text 404"

/**
 * The counterpart under test: a small server that implements the document correctly, except
 * for the one flaw it is given.
 */
const makeServer = (flaw: Flaw) =>
  Effect.gen(function* () {
    const port = yield* freePort
    const json = (response: ServerResponse, status: number, body: unknown) => {
      response.writeHead(status, { "content-type": "application/json" })
      response.end(JSON.stringify(body))
    }
    const refuse = (response: ServerResponse, message: string) =>
      flaw === "untagged error"
        ? json(response, 400, { error: message })
        : json(response, 400, { _tag: "Invalid", message })
    const handle = (request: IncomingMessage, response: ServerResponse, body: string) => {
      const url = new URL(request.url ?? "/", "http://localhost")
      const match = /^\/items\/([^/]+)$/.exec(url.pathname)
      if (request.method === "GET" && match !== null) {
        const id = decodeURIComponent(match[1] ?? "")
        if (flaw === "crashes on a quote" && id.includes("'"))
          return json(response, 500, { _tag: "Defect", message: "syntax error" })
        const limit = url.searchParams.get("limit")
        if (limit !== null && !/^[1-9]\d{0,2}$/.test(limit)) return refuse(response, "limit must be 1 to 999")
        if (flaw === "breaks its schema" && limit === null) return json(response, 200, { id, size: "large" })
        return json(response, 200, { id, size: 1 })
      }
      if (request.method === "POST" && url.pathname === "/items") {
        if (!(request.headers["content-type"] ?? "").startsWith("application/json")) {
          return json(response, 415, { _tag: "UnsupportedMediaType", message: "send JSON" })
        }
        let input: unknown
        try {
          input = JSON.parse(body)
        } catch {
          return refuse(response, "not JSON")
        }
        const record = (input ?? {}) as Record<string, unknown>
        const valid =
          typeof input === "object" &&
          input !== null &&
          !Array.isArray(input) &&
          typeof record.name === "string" &&
          Number.isInteger(record.size) &&
          (record.size as number) >= 1 &&
          (record.size as number) <= 10 &&
          Object.keys(record).every((key) => key === "name" || key === "size")
        if (!valid)
          return flaw === "undocumented status"
            ? json(response, 422, { _tag: "Unprocessable", message: "no" })
            : refuse(response, "bad item")
        return json(response, 201, { id: "item-1", size: record.size })
      }
      if (flaw === "plain-text 404") {
        response.writeHead(404, { "content-type": "text/plain" })
        return response.end("Not Found")
      }
      json(response, 404, { _tag: "NotFound", message: "no such route" })
    }
    const server = createServer((request, response) => {
      const chunks: Array<Buffer> = []
      request.on("data", (chunk: Buffer) => chunks.push(chunk))
      request.on("end", () => handle(request, response, Buffer.concat(chunks).toString("utf8")))
    })
    yield* Effect.acquireRelease(
      Effect.callback<void>((resume) => {
        server.listen(port, "127.0.0.1", () => resume(Effect.void))
      }),
      () => Effect.sync(() => server.close())
    )
    return `http://127.0.0.1:${port}`
  })

const fuzz = (flaw: Flaw) =>
  Effect.gen(function* () {
    const baseUrl = yield* makeServer(flaw)
    return yield* fuzzOpenApi({ baseUrl, document, seed: 7, examples: { limit: ["5"] } })
  })

const kinds = (report: { readonly findings: ReadonlyArray<{ operation: string; status: number; kind: string }> }) =>
  report.findings.map((finding) => `${finding.operation} ${finding.status} ${finding.kind}`)

describe("OpenApiFuzzer", () => {
  it.live("finds nothing on a server that keeps its document, after sending every case", () =>
    Effect.gen(function* () {
      const report = yield* fuzz("none")
      assert.deepStrictEqual(kinds(report), [], report.summary)
      assert.isAtLeast(report.requests, 150)
      assert.isAtLeast(report.statuses[200] ?? 0, 1)
      assert.isAtLeast(report.statuses[201] ?? 0, 1)
      assert.isAtLeast(report.statuses[400] ?? 0, 50)
    })
  )

  it.live("reports a 5xx, with the request that caused it", () =>
    Effect.gen(function* () {
      const report = yield* fuzz("crashes on a quote")
      assert.deepStrictEqual(kinds(report), ["GET /items/{item_id} 500 server-error"], report.summary)
      assert.include(report.findings[0]?.request ?? "", "'")
      assert.match(report.summary, /syntax error/)
    })
  )

  it.live("reports a body that breaks the documented schema", () =>
    Effect.gen(function* () {
      const report = yield* fuzz("breaks its schema")
      assert.deepStrictEqual(kinds(report), ["GET /items/{item_id} 200 schema-mismatch"], report.summary)
      assert.match(report.findings[0]?.detail ?? "", /\/size must be integer/)
    })
  )

  it.live("reports an error without _tag and message, and a status the operation does not document", () =>
    Effect.gen(function* () {
      assert.includeMembers(kinds(yield* fuzz("untagged error")), [
        "GET /items/{item_id} 400 schema-mismatch",
        "POST /items 400 schema-mismatch"
      ])
      assert.deepStrictEqual(kinds(yield* fuzz("undocumented status")), ["POST /items 422 undocumented-status"])
    })
  )

  it.live("holds requests no operation declares (other methods, unknown paths) to JSON errors", () =>
    Effect.gen(function* () {
      // An empty path parameter (`/items/`) reaches no route either.
      assert.deepStrictEqual(kinds(yield* fuzz("plain-text 404")), [
        "(method not declared) 404 not-json",
        "(path not served) 404 not-json",
        "GET /items/{item_id} 404 not-json"
      ])
    })
  )

  it("generates the same requests from the same seed, and others from another", () => {
    const options = { baseUrl: "http://127.0.0.1:1", document }
    const first = generateCases({ ...options, seed: 1 })
    assert.deepStrictEqual(generateCases({ ...options, seed: 1 }), first)
    assert.notDeepEqual(generateCases({ ...options, seed: 2 }), first)
    // Every place is reached: path, query, body fields, the body as a whole, the content type.
    const labels = first.map((fuzzCase) => fuzzCase.label).join("\n")
    for (const expected of [
      /path item_id = SQL quote/,
      /query limit = numeric string -1/,
      /body size = maximum \+ 1/,
      /body name = string 100 KB/,
      /raw body: duplicate key/,
      /raw body: prototype pollution/,
      /content-type "text\/plain"/
    ]) {
      assert.match(labels, expected)
    }
  })
})
