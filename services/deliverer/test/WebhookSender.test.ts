import { timingSafeEqual } from "node:crypto"
import { readFileSync } from "node:fs"
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http"
import * as http from "node:http"
import * as https from "node:https"
import type { AddressInfo } from "node:net"
import { getCACertificates, setDefaultCACertificates, type TLSSocket } from "node:tls"
import { deliveryId, WebhookHeaders, webhookSignature } from "@dexmon/domain"
import { assert, describe, layer } from "@effect/vitest"
import { ConfigProvider, Deferred, Effect, Fiber, Layer } from "effect"
import { HostLookupError, MAX_RESPONSE_BYTES, type ResolveHost, type SendResult, WebhookSender } from "../src/index.ts"

/** A request as the receiver saw it, with the body exactly as it came over the wire. */
interface Received {
  readonly method: string
  readonly url: string
  readonly headers: IncomingHttpHeaders
  readonly rawBody: Buffer
}

/** A webhook receiver on 127.0.0.1 at a port the kernel chose: what it got, and how many connections it saw. */
interface Receiver {
  readonly port: number
  readonly url: string
  readonly received: Array<Received>
  readonly connections: () => number
}

/** A key and certificate for `hooks.pinned.invalid` (valid to 2126), for the receiver that speaks https. */
const pinnedCertificate = {
  key: readFileSync(new URL("fixtures/hooks.pinned.invalid.key.pem", import.meta.url)),
  cert: readFileSync(new URL("fixtures/hooks.pinned.invalid.cert.pem", import.meta.url))
}

/**
 * Starts a real HTTP server (https with `tls`) for the test's scope; `answer`
 * responds to each request once its whole body is in. Closing it drops any
 * connection still open, so a receiver that never answers does not hold the
 * test up.
 */
const receiver = (
  answer: (request: IncomingMessage, response: ServerResponse, received: Received) => void,
  options?: { readonly tls: typeof pinnedCertificate }
) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly server: http.Server; readonly receiver: Receiver }>((resume) => {
      const received: Array<Received> = []
      let connections = 0
      const handle = (request: IncomingMessage, response: ServerResponse) => {
        const chunks: Array<Buffer> = []
        request.on("data", (chunk: Buffer) => chunks.push(chunk))
        request.on("end", () => {
          const entry = {
            method: request.method ?? "",
            url: request.url ?? "",
            headers: request.headers,
            rawBody: Buffer.concat(chunks)
          }
          received.push(entry)
          answer(request, response, entry)
        })
      }
      const server = options === undefined ? http.createServer(handle) : https.createServer(options.tls, handle)
      server.on("connection", () => {
        connections += 1
      })
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as AddressInfo
        resume(
          Effect.succeed({
            server,
            receiver: { port, url: `http://127.0.0.1:${port}/hooks/dexmon`, received, connections: () => connections }
          })
        )
      })
    }),
    ({ server }) =>
      Effect.callback<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map(({ receiver }) => receiver))

const respond =
  (status: number, headers: Record<string, string> = {}, body = "") =>
  (_request: IncomingMessage, response: ServerResponse) => {
    response.writeHead(status, headers)
    response.end(body)
  }

const secret = "whsec_test_0123456789abcdef"
/** A notification as the deliverer sends it: its exact text is what is signed, non-ASCII and spacing included. */
const body = JSON.stringify({
  notification_id: "6f1c2d7e-1111-4a4a-9b9b-222233334444",
  alert: { alert_type: "URGENT_LOW", value: 50, unit: "mg/dL", message: "Glukose 50 mg/dL ↓ – jetzt handeln" }
})
const now = Date.UTC(2026, 10, 30, 12, 0, 0, 750)
const request = (url: string) => ({
  url,
  body,
  secret,
  deliveryId: deliveryId("6f1c2d7e-1111-4a4a-9b9b-222233334444", "0d9a3b9e-5555-4c4c-8d8d-666677778888"),
  now
})

/** How a receiver checks a delivery: recompute the signature over the raw body, compare in constant time. */
const verifies = (received: Received): boolean => {
  const timestamp = Number(received.headers[WebhookHeaders.timestamp])
  const expected = Buffer.from(webhookSignature(secret, timestamp, received.rawBody.toString("utf8")))
  const given = Buffer.from(String(received.headers[WebhookHeaders.signature]))
  return expected.length === given.length && timingSafeEqual(expected, given)
}

const configured = (env: Record<string, string>) =>
  WebhookSender.layerConfig.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env }))))

/** Waits for a signal from a receiver, failing loudly rather than hanging when it never comes. */
const signalled = (deferred: Deferred.Deferred<void>, what: string) =>
  Deferred.await(deferred).pipe(
    Effect.timeoutOrElse({ duration: "5 seconds", orElse: () => Effect.die(new Error(`${what} never happened`)) })
  )

const assertRetry = (result: SendResult) => {
  assert.strictEqual(result.outcome, "retry", JSON.stringify(result))
  return result as Extract<SendResult, { outcome: "retry" }>
}

const assertFinal = (result: SendResult) => {
  assert.strictEqual(result.outcome, "final", JSON.stringify(result))
  return result as Extract<SendResult, { outcome: "final" }>
}

layer(configured({ DEXMON_WEBHOOK_TIMEOUT: "1s", DEXMON_PROFILE: "development" }), { excludeTestServices: true })(
  "WebhookSender in development, against receivers on 127.0.0.1",
  (it) => {
    it.effect("delivers a signed POST of the exact body; the receiver verifies it over the raw bytes", () =>
      Effect.gen(function* () {
        // The receiver holds its answer until the test has seen the request arrive, and measures how long it
        // held it: the latency covers at least that, and at most the whole send as the test measured it.
        const arrived = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        let heldMs = 0
        const target = yield* receiver((request, response) => {
          const since = performance.now()
          Deferred.doneUnsafe(arrived, Effect.void)
          // The handler is node's callback: it waits on the test's signal on a fiber of its own.
          Effect.runFork(
            Deferred.await(release).pipe(
              Effect.andThen(
                Effect.sync(() => {
                  heldMs = performance.now() - since
                  respond(204)(request, response)
                })
              )
            )
          )
        })
        const sender = yield* WebhookSender
        const started = performance.now()
        const sending = yield* Effect.forkChild(sender.send(request(target.url)))
        yield* signalled(arrived, "the request")
        yield* Deferred.succeed(release, undefined)
        const result = yield* Fiber.join(sending)
        const sendMs = performance.now() - started

        assert.strictEqual(result.outcome, "delivered")
        assert.strictEqual(result.status, 204)
        assert.isAtLeast(result.latencyMs, Math.floor(heldMs))
        assert.isAtMost(result.latencyMs, Math.ceil(sendMs))
        assert.strictEqual(target.received.length, 1)
        const [got] = target.received
        assert.strictEqual(got!.method, "POST")
        assert.strictEqual(got!.url, "/hooks/dexmon")
        assert.isTrue(got!.rawBody.equals(Buffer.from(body, "utf8")))
        assert.isTrue(verifies(got!))
        assert.strictEqual(got!.headers[WebhookHeaders.timestamp], String(Math.floor(now / 1_000)))
        assert.strictEqual(got!.headers[WebhookHeaders.delivery], request(target.url).deliveryId)
        assert.match(String(got!.headers[WebhookHeaders.signature]), /^v1=[0-9a-f]{64}$/)
        assert.strictEqual(got!.headers["content-type"], "application/json")
        assert.strictEqual(got!.headers["user-agent"], "DexMon-Webhooks/1")
        assert.strictEqual(got!.headers.host, `127.0.0.1:${target.port}`)
        // A tampered body or another secret does not verify.
        assert.isFalse(verifies({ ...got!, rawBody: Buffer.from(body.replace("50", "51")) }))
      })
    )

    it.effect("sends the same delivery id and a fresh signature on every attempt", () =>
      Effect.gen(function* () {
        const target = yield* receiver(respond(200))
        const sender = yield* WebhookSender
        yield* sender.send(request(target.url))
        yield* sender.send({ ...request(target.url), now: now + 60_000 })
        const [first, second] = target.received
        assert.strictEqual(first!.headers[WebhookHeaders.delivery], second!.headers[WebhookHeaders.delivery])
        assert.notStrictEqual(first!.headers[WebhookHeaders.signature], second!.headers[WebhookHeaders.signature])
        assert.isTrue(verifies(first!) && verifies(second!))
      })
    )

    it.effect("retries a 503, with the wait Retry-After asks for and what the endpoint said", () =>
      Effect.gen(function* () {
        const target = yield* receiver(respond(503, { "retry-after": "7" }, "down for maintenance\n"))
        const result = assertRetry(yield* (yield* WebhookSender).send(request(target.url)))
        assert.strictEqual(result.status, 503)
        assert.strictEqual(result.retryAfter, 7_000)
        assert.strictEqual(result.error, "HTTP 503 Service Unavailable: down for maintenance")
      })
    )

    it.effect("retries a 429 with an HTTP-date Retry-After, and a 500 without one", () =>
      Effect.gen(function* () {
        const sender = yield* WebhookSender
        // An HTTP date in the past means "now": no extra wait.
        const limited = yield* receiver(respond(429, { "retry-after": "Sun, 06 Nov 1994 08:49:37 GMT" }))
        const throttled = assertRetry(yield* sender.send(request(limited.url)))
        assert.strictEqual(throttled.status, 429)
        assert.strictEqual(throttled.retryAfter, 0)

        const broken = yield* receiver(respond(500, {}, "oops"))
        const failed = assertRetry(yield* sender.send(request(broken.url)))
        assert.strictEqual(failed.status, 500)
        assert.isUndefined(failed.retryAfter)
      })
    )

    it.effect("gives up on a 404 and other 4xx at once", () =>
      Effect.gen(function* () {
        const sender = yield* WebhookSender
        const missing = yield* receiver(respond(404, { "content-type": "text/plain" }, "no such hook"))
        const result = assertFinal(yield* sender.send(request(missing.url)))
        assert.strictEqual(result.status, 404)
        assert.strictEqual(result.error, "HTTP 404 Not Found: no such hook")

        const refused = yield* receiver(respond(401))
        assert.strictEqual(assertFinal(yield* sender.send(request(refused.url))).status, 401)
      })
    )

    it.effect("does not follow a redirect: a 302 is final and its Location is never fetched", () =>
      Effect.gen(function* () {
        const elsewhere = yield* receiver(respond(200))
        const redirecting = yield* receiver(respond(302, { location: elsewhere.url }))
        const result = assertFinal(yield* (yield* WebhookSender).send(request(redirecting.url)))
        assert.strictEqual(result.status, 302)
        assert.include(result.error, "redirects are not followed")
        assert.include(result.error, elsewhere.url)
        assert.strictEqual(redirecting.received.length, 1)
        assert.strictEqual(elsewhere.connections(), 0)
        assert.strictEqual(elsewhere.received.length, 0)
      })
    )

    it.effect("retries an endpoint that never answers after the timeout, and closes the connection", () =>
      Effect.gen(function* () {
        const closed = Deferred.makeUnsafe<void>()
        const hanging = yield* receiver((request) => {
          request.socket.on("close", () => Deferred.doneUnsafe(closed, Effect.void))
        })
        const result = assertRetry(yield* (yield* WebhookSender).send(request(hanging.url)))
        assert.strictEqual(result.status, null)
        assert.strictEqual(result.error, "no answer within 1000 ms")
        assert.isAtLeast(result.latencyMs, 1_000)
        assert.isBelow(result.latencyMs, 3_000)
        // The interrupted request was destroyed: the receiver sees its connection close.
        yield* signalled(closed, "the hanging connection's close")
      })
    )

    it.effect("retries when the connection is refused", () =>
      Effect.gen(function* () {
        // A port that was just free: nothing listens there once the receiver is closed.
        const port = yield* Effect.scoped(Effect.map(receiver(respond(200)), (gone) => gone.port))
        const result = assertRetry(yield* (yield* WebhookSender).send(request(`http://127.0.0.1:${port}/`)))
        assert.strictEqual(result.status, null)
        assert.include(result.error, "ECONNREFUSED")
      })
    )

    it.effect("reads only the start of a large error body", () =>
      Effect.gen(function* () {
        const huge = yield* receiver(respond(500, {}, "x".repeat(5_000_000)))
        const result = assertRetry(yield* (yield* WebhookSender).send(request(huge.url)))
        assert.isAtMost(result.error.length, MAX_RESPONSE_BYTES + 100)
        assert.isBelow(result.latencyMs, 1_000)
      })
    )

    it.effect("refuses a URL the policy refuses without sending anything", () =>
      Effect.gen(function* () {
        const target = yield* receiver(respond(200))
        const withUser = target.url.replace("http://", "http://user:pw@")
        const result = assertFinal(yield* (yield* WebhookSender).send(request(withUser)))
        assert.strictEqual(result.error, "url refused: must not carry a user name or password")
        assert.strictEqual(target.connections(), 0)
      })
    )
  }
)

layer(configured({ DEXMON_WEBHOOK_TIMEOUT: "1s", DEXMON_PROFILE: "production" }), { excludeTestServices: true })(
  "WebhookSender in production",
  (it) => {
    it.effect("refuses loopback, as a literal or behind a name, without connecting", () =>
      Effect.gen(function* () {
        const sender = yield* WebhookSender
        const target = yield* receiver(respond(200))

        const literal = assertFinal(yield* sender.send(request(`https://127.0.0.1:${target.port}/hooks`)))
        assert.strictEqual(literal.status, null)
        assert.strictEqual(literal.error, "url refused: its host 127.0.0.1 is not a public address (loopback)")

        // localhost passes the URL policy (it is a name); what it resolves to is refused.
        const named = assertFinal(yield* sender.send(request(`https://localhost:${target.port}/hooks`)))
        assert.match(named.error, /^localhost resolves to an address that is not public \(loopback\)$/)

        assert.strictEqual(target.connections(), 0)
      })
    )

    it.effect("refuses plain http", () =>
      Effect.gen(function* () {
        const target = yield* receiver(respond(200))
        const result = assertFinal(yield* (yield* WebhookSender).send(request(target.url)))
        assert.strictEqual(result.error, "url refused: must use https")
        assert.strictEqual(target.connections(), 0)
      })
    )
  }
)

/** A resolver that answers from a table and counts the questions, as DNS would at every attempt. */
const fixedResolver = (answers: Record<string, ReadonlyArray<string>>) => {
  const asked: Array<string> = []
  const resolve: ResolveHost = (host) =>
    Effect.suspend(() => {
      asked.push(host)
      const addresses = answers[host]
      return addresses === undefined
        ? Effect.fail(new HostLookupError({ host, message: `cannot resolve ${host}: ENOTFOUND` }))
        : Effect.succeed(addresses.map((address) => ({ address, family: address.includes(":") ? 6 : 4 })))
    })
  return { resolve, asked }
}

describe("WebhookSender and name resolution", () => {
  const dns = fixedResolver({
    // `.invalid` never resolves through the system resolver (RFC 6761): a connection proves the checked answer was used.
    "hooks.rebind.invalid": ["127.0.0.1"],
    "hooks.pinned.invalid": ["127.0.0.1"],
    "impostor.invalid": ["127.0.0.1"],
    "mixed.example": ["93.184.215.14", "10.0.0.7"]
  })

  layer(WebhookSender.layer({ timeout: 1_000, mode: "development", resolve: dns.resolve }), {
    excludeTestServices: true
  })("pinned to the checked answer", (it) => {
    it.effect("resolves at every attempt and connects to the address it checked, with the URL's host", () =>
      Effect.gen(function* () {
        const target = yield* receiver(respond(200))
        const sender = yield* WebhookSender
        const url = `http://hooks.rebind.invalid:${target.port}/hooks`
        assert.strictEqual((yield* sender.send(request(url))).outcome, "delivered")
        assert.strictEqual((yield* sender.send(request(url))).outcome, "delivered")
        assert.deepStrictEqual(
          dns.asked.filter((host) => host === "hooks.rebind.invalid"),
          ["hooks.rebind.invalid", "hooks.rebind.invalid"]
        )
        assert.strictEqual(target.received[0]!.headers.host, `hooks.rebind.invalid:${target.port}`)
      })
    )

    it.effect(
      "over https, presents the URL's host for SNI and the certificate check while connecting to the pinned address",
      () =>
        Effect.gen(function* () {
          // The test's certificate authority is trusted for this test only.
          yield* Effect.acquireRelease(
            Effect.sync(() => {
              const before = getCACertificates("default")
              setDefaultCACertificates([...before, pinnedCertificate.cert.toString("utf8")])
              return before
            }),
            (before) => Effect.sync(() => setDefaultCACertificates(before))
          )
          let servername: string | false | null | undefined
          const target = yield* receiver(
            (request, response) => {
              servername = (request.socket as TLSSocket).servername
              respond(200)(request, response)
            },
            { tls: pinnedCertificate }
          )
          const sender = yield* WebhookSender
          const delivered = yield* sender.send(request(`https://hooks.pinned.invalid:${target.port}/hooks`))
          assert.strictEqual(delivered.outcome, "delivered", JSON.stringify(delivered))
          assert.strictEqual(servername, "hooks.pinned.invalid")
          assert.isTrue(verifies(target.received[0]!))

          // Another name pinned to the same address does not pass the certificate check.
          const impostor = assertRetry(yield* sender.send(request(`https://impostor.invalid:${target.port}/hooks`)))
          assert.include(impostor.error, "ERR_TLS_CERT_ALTNAME_INVALID")
          assert.strictEqual(target.received.length, 1)
        })
    )

    it.effect("retries a name that does not resolve", () =>
      Effect.gen(function* () {
        const result = assertRetry(yield* (yield* WebhookSender).send(request("http://gone.invalid/hooks")))
        assert.strictEqual(result.error, "cannot resolve gone.invalid: ENOTFOUND")
      })
    )
  })

  layer(WebhookSender.layer({ timeout: 1_000, mode: "production", resolve: dns.resolve }), {
    excludeTestServices: true
  })("in production", (it) => {
    it.effect("refuses a name when any of its addresses is not public", () =>
      Effect.gen(function* () {
        const result = assertFinal(yield* (yield* WebhookSender).send(request("https://mixed.example/hooks")))
        assert.strictEqual(result.error, "mixed.example resolves to an address that is not public (private)")
      })
    )
  })
})
