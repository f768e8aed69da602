import { connect, type Socket } from "node:net"
import { freePort } from "@dexmon/ports"
import { DexMonClient } from "@dexmon/sdk"
import { eventually, makeDexMonProcessWith } from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect } from "effect"

/** The bounds of work per request at the HTTP edge (issue 16, item 6): small JSON errors, no 500 for any cursor. */

const HOUR = 3_600_000
const iso = (millis: number) => new Date(millis).toISOString()
const reading = (now: number, overrides: Record<string, unknown> = {}) => ({
  sensor_id: "edge-sensor",
  timestamp: iso(now - 60_000),
  glucose_value: 100,
  ...overrides
})

interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly text: string
  readonly body: { readonly _tag?: string; readonly message?: string; readonly issues?: ReadonlyArray<Issue> }
}
interface Issue {
  readonly path: string
  readonly message: string
}

const call = (url: string, init: RequestInit = {}) =>
  Effect.promise(async (): Promise<Answer> => {
    const response = await fetch(url, init)
    const text = await response.text()
    let body: Answer["body"] = {}
    try {
      body = JSON.parse(text)
    } catch {
      body = {}
    }
    return { status: response.status, headers: response.headers, text, body }
  })

const postJson = (url: string, body: string, contentType = "application/json") =>
  call(url, { method: "POST", headers: { "content-type": contentType }, body })

/** Every error is JSON with its `_tag` and a `message`, and small. */
const assertJsonError = (answer: Answer, status: number, tag: string, what: string) => {
  assert.strictEqual(answer.status, status, `${what}: ${answer.text.slice(0, 500)}`)
  assert.match(answer.headers.get("content-type") ?? "", /json/, `${what}: content-type`)
  assert.strictEqual(answer.body._tag, tag, `${what}: ${answer.text.slice(0, 500)}`)
  assert.isString(answer.body.message, what)
  assert.isAbove(answer.body.message!.length, 0, what)
  assert.isBelow(answer.text.length, 8_192, `${what}: answer of ${answer.text.length} bytes`)
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")

/** Crafted cursors: none is one this server issued, and none may reach a store as it is. */
const craftedCursors: ReadonlyArray<readonly [string, string]> = [
  ["random base64", "q83vEjRWeJq8"],
  ["not base64url", "%%%***"],
  ["JSON of wrong types", b64(["1", 2])],
  ["a huge number", b64([1e300, "s"])],
  ["a timestamp beyond Date", b64([9e15, "s"])],
  ["a negative fraction", b64([-1.5, "s"])],
  ["the year 0000", b64([-62_167_219_200_000, "s"])],
  ["the year 10000", b64([253_402_300_800_000, "s"])],
  ["NaN as a string", b64(["NaN", "s"])],
  ["too short", b64([1])],
  ["too long", b64([1, "s", 3])],
  ["an object", b64({ timestamp: 1, sensor_id: "s" })],
  ["a NUL in the id", b64([1_700_000_000_000, "a\u0000b"])],
  ["a 10 KB cursor", "A".repeat(10_240)],
  ["a 10 KB id", b64([1_700_000_000_000, "s".repeat(7_000)])]
]

/** Opens a raw TCP connection and resolves once connected. */
const openSocket = (port: number) =>
  Effect.callback<Socket>((resume) => {
    const socket = connect(port, "127.0.0.1")
    socket.once("connect", () => resume(Effect.succeed(socket)))
    socket.once("error", () => resume(Effect.succeed(socket)))
  })

/** Writes `data` and waits for the first bytes back or for the connection to close, whichever comes first. */
const firstAnswer = (socket: Socket, data: string) =>
  Effect.callback<{ readonly data: string; readonly closed: boolean }>((resume) => {
    let received = ""
    socket.on("data", (chunk) => {
      received += String(chunk)
      if (received.includes("\r\n\r\n")) resume(Effect.succeed({ data: received, closed: false }))
    })
    socket.once("close", () => resume(Effect.succeed({ data: received, closed: true })))
    socket.on("error", () => undefined)
    if (!socket.destroyed) socket.write(data)
  })

/** Waits for the server to close the connection; answers whatever it sent before. */
const untilClosed = (socket: Socket) =>
  Effect.callback<string>((resume) => {
    let received = ""
    socket.on("data", (chunk) => {
      received += String(chunk)
    })
    socket.on("error", () => undefined)
    if (socket.destroyed) resume(Effect.succeed(received))
    socket.once("close", () => resume(Effect.succeed(received)))
  })

/** A DexMon with a small body limit and a one-second headers timeout. */
const startEdgeProcess = Effect.gen(function* () {
  const dexmon = yield* makeDexMonProcessWith({
    SECURITY_DISABLED: "true",
    DEXMON_MAX_BODY_BYTES: "200000",
    DEXMON_HTTP_HEADERS_TIMEOUT: "1 second",
    DEXMON_HTTP_REQUEST_TIMEOUT: "5 seconds"
  })
  yield* dexmon.start
  const now = yield* Clock.currentTimeMillis
  return { base: dexmon.baseUrl, now, sensor: `${dexmon.baseUrl}/api/v1/glucose/sensor` }
})

describe("the HTTP edge", () => {
  it.live(
    "answers 404, 405, 413, 415 and malformed JSON as small JSON errors",
    () =>
      Effect.gen(function* () {
        const { base, now, sensor } = yield* startEdgeProcess
        // 404, 405 (with Allow), 413, 415: JSON like every other error.
        assertJsonError(yield* call(`${base}/no/such/route`), 404, "NotFound", "unknown route")
        const wrongMethod = yield* call(`${base}/api/v1/readings`, { method: "DELETE" })
        assertJsonError(wrongMethod, 405, "MethodNotAllowed", "DELETE /api/v1/readings")
        assert.include(wrongMethod.headers.get("allow") ?? "", "GET")
        assertJsonError(yield* call(sensor), 405, "MethodNotAllowed", "GET on the ingestion endpoint")
        assertJsonError(
          yield* postJson(sensor, `{"readings": [${"1,".repeat(150_000)}1]}`),
          413,
          "PayloadTooLarge",
          "a body over DEXMON_MAX_BODY_BYTES"
        )
        assertJsonError(
          yield* postJson(sensor, JSON.stringify(reading(now)), "text/plain"),
          415,
          "UnsupportedMediaType",
          "a text/plain body"
        )
        assertJsonError(yield* postJson(sensor, '{"sensor_id": '), 400, "ValidationError", "malformed JSON")
      }),
    120_000
  )

  it.live(
    "names the field a single reading lacks, caps a batch's issues at 20, and stores nothing refused",
    () =>
      Effect.gen(function* () {
        const { base, now, sensor } = yield* startEdgeProcess
        // A single reading without glucose_value names glucose_value, not the batch's `readings`.
        const { glucose_value: _, ...withoutGlucose } = reading(now)
        const single = yield* postJson(sensor, JSON.stringify(withoutGlucose))
        assertJsonError(single, 400, "ValidationError", "a reading without glucose_value")
        assert.deepStrictEqual(
          single.body.issues?.map((issue) => issue.path),
          ["glucose_value"]
        )

        // 1,000 bad readings: 20 issues named, the rest counted, a small body. Both the schema's checks
        // and the receiver's timestamp checks.
        const badGlucose = Array.from({ length: 1000 }, (_, i) =>
          reading(now, { timestamp: iso(now - (i + 1) * 1000), glucose_value: 700 })
        )
        const inFuture = Array.from({ length: 1000 }, (_, i) => reading(now, { timestamp: iso(now + HOUR + i * 1000) }))
        for (const [what, readings] of [
          ["1,000 glucose values out of range", badGlucose],
          ["1,000 timestamps in the future", inFuture]
        ] as const) {
          const answer = yield* postJson(sensor, JSON.stringify({ readings }))
          assertJsonError(answer, 400, "ValidationError", what)
          assert.strictEqual(answer.body.issues?.length, 20, what)
          assert.strictEqual(answer.body.issues?.[0]?.path.startsWith("readings[0]."), true, what)
          assert.include(answer.body.message ?? "", "and 980 more issues", what)
        }

        // Nothing refused above was stored: a marker reading posted last (same sensor, same partition, in
        // order) is, once stored, the only reading.
        yield* Effect.gen(function* () {
          const client = yield* DexMonClient
          const marker = now - 3 * HOUR
          yield* client.ingestion.postSensor({
            payload: { sensor_id: "edge-sensor" as never, timestamp: marker, glucose_value: 120 }
          })
          const query = { query: { from: now - 100 * 24 * HOUR, to: now + 2 * HOUR } }
          const page = yield* eventually(client.readings.list(query), (p) => p.items.length > 0, {
            what: "the marker reading stored",
            every: "50 millis",
            times: 400
          })
          assert.deepStrictEqual(
            page.items.map((r) => r.timestamp),
            [marker]
          )
        }).pipe(Effect.provide(DexMonClient.layer({ baseUrl: base })))
      }),
    120_000
  )

  it.live(
    "refuses every crafted or foreign cursor with 400 naming the cursor, never 500",
    () =>
      Effect.gen(function* () {
        const { base, now } = yield* startEdgeProcess
        // Crafted cursors on every listing that takes one: 400 naming the cursor, never 500.
        const range = `from=${encodeURIComponent(iso(now - 24 * HOUR))}&to=${encodeURIComponent(iso(now + HOUR))}`
        for (const listing of ["/api/v1/readings", "/api/v1/alerts"]) {
          for (const [what, cursor] of craftedCursors) {
            const answer = yield* call(`${base}${listing}?${range}&cursor=${encodeURIComponent(cursor)}`)
            assertJsonError(answer, 400, answer.body._tag ?? "?", `${listing} with ${what}`)
            assert.include(["InvalidCursor", "ValidationError"], answer.body._tag, `${listing} with ${what}`)
            assert.include(answer.body.message ?? "", "cursor", `${listing} with ${what}`)
          }
        }
        // Another listing's cursor (a readings position as an alerts cursor): still 400, not 500.
        const readingsCursor = b64([now - HOUR, "edge-sensor"])
        const foreign = yield* call(`${base}/api/v1/alerts?${range}&cursor=${readingsCursor}`)
        assertJsonError(foreign, 400, "InvalidCursor", "a readings cursor given to alerts")
      }),
    120_000
  )

  it.live(
    "cuts a client that sends its headers slowly, and refuses oversized headers, as JSON",
    () =>
      Effect.gen(function* () {
        const { base } = yield* startEdgeProcess
        // A client that sends its headers slowly is cut off (408, then closed) once the headers timeout passes.
        const slow = yield* openSocket(Number(new URL(base).port))
        slow.write("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        // Bounded far above the configured second but far below Node's own default (a minute, checked every 30 s).
        const cut = yield* untilClosed(slow).pipe(
          Effect.timeoutOrElse({
            duration: "20 seconds",
            orElse: () => Effect.die(new Error("a client sending its headers slowly was not cut off"))
          })
        )
        assert.match(cut, /^HTTP\/1\.1 408/, `slow headers answered: ${cut.slice(0, 200)}`)
        assert.include(cut, '"_tag":"RequestTimeout"')

        // Headers over DEXMON_HTTP_MAX_HEADER_BYTES: 431, as JSON too.
        const large = yield* openSocket(Number(new URL(base).port))
        large.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nx-filler: ${"a".repeat(20_000)}\r\n\r\n`)
        const tooLarge = yield* untilClosed(large)
        assert.match(tooLarge, /^HTTP\/1\.1 431/, tooLarge.slice(0, 200))
        assert.include(tooLarge, '"_tag":"HeadersTooLarge"')
      }),
    120_000
  )

  it.live(
    "serves /metrics and /readyz only on DEXMON_ADMIN_PORT, and refuses connections over DEXMON_HTTP_MAX_CONNECTIONS",
    () =>
      Effect.gen(function* () {
        const adminPort = yield* freePort
        const dexmon = yield* makeDexMonProcessWith({
          SECURITY_DISABLED: "true",
          DEXMON_ADMIN_PORT: String(adminPort),
          DEXMON_HTTP_MAX_CONNECTIONS: "2"
        })
        const admin = `http://127.0.0.1:${adminPort}`
        // The public `/readyz` is gone, so readiness is awaited on the admin port.
        yield* dexmon.launch()
        yield* eventually(
          call(`${admin}/readyz`).pipe(Effect.catchDefect(() => Effect.succeed(undefined))),
          (answer) => answer?.status === 200,
          { what: "the admin /readyz answering 200", every: "100 millis", times: 600 }
        )
        const metrics = yield* call(`${admin}/metrics`)
        assert.strictEqual(metrics.status, 200)
        assert.include(metrics.text, "# TYPE")
        assert.strictEqual((yield* call(`${admin}/healthz`)).status, 200)
        assertJsonError(yield* call(`${admin}/api/v1/readings`), 404, "NotFound", "the API on the admin port")
        assertJsonError(yield* call(`${dexmon.baseUrl}/metrics`), 404, "NotFound", "/metrics on the public port")
        assertJsonError(yield* call(`${dexmon.baseUrl}/readyz`), 404, "NotFound", "/readyz on the public port")
        // The router ignores case, repeated and trailing slashes, `;` suffixes and escapes: so must the split.
        for (const variant of ["/readyz/", "/READYZ", "//readyz", "/readyz;x", "/%72eadyz", "/Metrics/"]) {
          assertJsonError(yield* call(`${dexmon.baseUrl}${variant}`), 404, "NotFound", `${variant} on the public port`)
        }
        assert.strictEqual((yield* call(`${dexmon.baseUrl}/healthz`)).status, 200)

        // The connection cap: of three raw connections to a server that takes two, one is closed unanswered
        // (fetch's own pooled keep-alive connections may hold places too, so it may be the first).
        const port = Number(new URL(dexmon.baseUrl).port)
        const request = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        const sockets: Array<Socket> = []
        const answers: Array<{ readonly data: string; readonly closed: boolean }> = []
        for (let i = 0; i < 3; i++) {
          const socket = yield* openSocket(port)
          sockets.push(socket)
          answers.push(yield* firstAnswer(socket, request))
        }
        const refused = answers.findIndex((answer) => answer.closed && answer.data === "")
        assert.isAtLeast(refused, 0, `one connection over the cap is refused: ${JSON.stringify(answers)}`)
        for (const answer of answers.slice(0, refused)) assert.match(answer.data, /^HTTP\/1\.1 200/)
        for (const socket of sockets) socket.destroy()
        // The places are given back: the server answers again.
        yield* eventually(
          call(`${dexmon.baseUrl}/healthz`).pipe(Effect.catchDefect(() => Effect.succeed(undefined))),
          (answer) => answer?.status === 200,
          { what: "the public port answering after the connections closed", every: "100 millis", times: 100 }
        )
      }),
    180_000
  )
})
