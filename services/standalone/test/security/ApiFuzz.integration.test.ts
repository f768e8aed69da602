import {
  ALL,
  authEnv,
  type DexMonProcess,
  eventually,
  fuzzOpenApi,
  makeDexMonProcess,
  makeDexMonProcessWith,
  makeIssuer,
  makeWebhookReceiver,
  mint,
  type OpenApiDocument
} from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect } from "effect"

interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly body: Record<string, unknown>
}

const MINUTE = 60_000

/**
 * Seeds what reads return (readings falling to an urgent low, so an alert opens; a second owned
 * sensor; two webhooks and a delivery; a page cursor and the settings' etag), then fuzzes every
 * operation of the served document as the caller `credentials` name, and checks the findings and
 * that the seeded readings came out unchanged.
 */
const seedAndFuzz = (
  dexmon: DexMonProcess,
  credentials: Record<string, string>,
  budget: { readonly seed: number; readonly randomCasesPerOperation: number; readonly maxCasesPerOperation: number }
) =>
  Effect.gen(function* () {
    const call = (path: string, init: { method?: string; body?: unknown; headers?: Record<string, string> } = {}) =>
      Effect.promise(async (): Promise<Answer> => {
        const response = await fetch(`${dexmon.baseUrl}${path}`, {
          method: init.method ?? (init.body === undefined ? "GET" : "POST"),
          headers: { ...credentials, "content-type": "application/json", ...init.headers },
          ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) })
        })
        const text = await response.text()
        return { status: response.status, headers: response.headers, body: text === "" ? {} : JSON.parse(text) }
      })
    const accepted = (answer: Answer, what: string) =>
      assert.isTrue(answer.status < 300, `${what}: ${answer.status} ${JSON.stringify(answer.body)}`)

    // Seeded state for reads to return items: readings falling to an urgent low (so an alert
    // episode opens), a second owned sensor for the stop operation, two webhooks and a delivery.
    const now = yield* Clock.currentTimeMillis
    const iso = (millis: number) => new Date(millis).toISOString()
    const seeded = [160, 140, 110, 80, 60, 50, 48].map((value, i) => ({
      sensor_id: "fuzz-cgm",
      timestamp: iso(now - (30 - 5 * i) * MINUTE),
      glucose_value: value
    }))
    accepted(yield* call("/api/v1/glucose/sensor", { body: { readings: seeded } }), "seed readings")
    accepted(
      yield* call("/api/v1/glucose/sensor", {
        body: { sensor_id: "fuzz-cgm-2", timestamp: iso(now - MINUTE), glucose_value: 120 }
      }),
      "seed a second sensor"
    )
    const range = `from=${iso(now - 60 * MINUTE)}&to=${iso(now + 60 * MINUTE)}`
    const readings = yield* eventually(
      call(`/api/v1/readings?${range}&sensor_id=fuzz-cgm`),
      (answer) => (answer.body.items as Array<unknown> | undefined)?.length === seeded.length,
      { what: "the seeded readings stored", every: "100 millis", times: 300 }
    )
    const alerts = yield* eventually(
      call("/api/v1/alerts/active"),
      (answer) => (answer.body.items as Array<unknown> | undefined)?.length !== 0,
      { what: "an alert episode open", every: "100 millis", times: 300 }
    )
    const alertId = String((alerts.body.items as Array<Record<string, unknown>>)[0]?.alert_id)
    const receiver = yield* makeWebhookReceiver(() => ({ status: 204 }))
    const webhook = yield* call("/api/v1/webhooks", { body: { url: receiver.url } })
    accepted(webhook, "create a webhook")
    const doomed = yield* call("/api/v1/webhooks", { body: { url: receiver.url } })
    accepted(doomed, "create a webhook to delete")
    const webhookId = String(webhook.body.id)
    accepted(yield* call(`/api/v1/webhooks/${webhookId}/test`, { method: "POST" }), "test delivery")
    yield* eventually(
      call(`/api/v1/webhooks/${webhookId}/deliveries`),
      (answer) => (answer.body.items as Array<unknown> | undefined)?.length !== 0,
      { what: "the test delivery recorded", every: "100 millis", times: 300 }
    )
    const firstPage = yield* call(`/api/v1/readings?${range}&sensor_id=fuzz-cgm&limit=2`)
    const cursor = String(firstPage.body.next_cursor)
    const settings = yield* call("/api/v1/alert-settings")
    const etag = settings.headers.get("etag") ?? ""
    const before = readings.body.items

    const document = (yield* call("/openapi.json")).body as unknown as OpenApiDocument
    const report = yield* fuzzOpenApi({
      baseUrl: dexmon.baseUrl,
      document,
      ...budget,
      headers: credentials,
      concurrency: 8,
      examples: {
        from: [iso(now - 60 * MINUTE)],
        to: [iso(now + 60 * MINUTE)],
        sensor_id: ["fuzz-cgm"],
        timestamp: [seeded[0]?.timestamp],
        alert_id: [alertId],
        webhook_id: [webhookId],
        cursor: [cursor],
        // The live feed's resume cursor: the next offset of every partition of both topics.
        "last-event-id": [Buffer.from(JSON.stringify({ e: { "0": 0 }, a: { "0": 0 } })).toString("base64url")],
        url: [receiver.url],
        "if-match": [etag],
        // Writes go to a sensor of their own, so the seeded readings must come out unchanged.
        "POST /api/v1/glucose/sensor sensor_id": ["fuzz-writes"],
        "POST /api/v1/glucose/sensor timestamp": [iso(now - 2 * MINUTE)],
        "POST /api/v1/glucose/manual sensor_id": ["fuzz-writes"],
        "POST /api/v1/glucose/manual timestamp": [iso(now - 3 * MINUTE)],
        "POST /api/v1/sensors/{sensor_id}/stop sensor_id": ["fuzz-cgm-2"],
        "DELETE /api/v1/webhooks/{webhook_id} webhook_id": [String(doomed.body.id)]
      }
    })
    yield* Effect.logInfo(report.summary.split("\n")[0])

    assert.isAtLeast(report.requests, budget.maxCasesPerOperation >= 400 ? 2000 : 500, "thousands of requests")
    assert.strictEqual(report.operations.length, Object.values(document.paths).flatMap(Object.keys).length)
    // Not vacuous: the valid cases reached the handlers and were served.
    assert.isAtLeast((report.statuses[200] ?? 0) + (report.statuses[202] ?? 0), 25, report.summary.split("\n")[0])
    assert.deepStrictEqual(
      report.findings.map((finding) => `${finding.operation} ${finding.status} ${finding.kind}`),
      [],
      report.summary
    )
    // Nothing the fuzzer sent changed the seeded readings.
    const after = yield* call(`/api/v1/readings?${range}&sensor_id=fuzz-cgm`)
    assert.deepStrictEqual(after.body.items, before)
  })

describe("the API under an OpenAPI-driven fuzzer", () => {
  it.live(
    "bearer tokens: thousands of boundary, wrong-type, oversize and hostile requests get no 5xx, only documented statuses and bodies, and change nothing",
    () =>
      Effect.gen(function* () {
        const issuer = yield* makeIssuer
        const key = yield* issuer.newKey("fuzz-key", true)
        const dexmon = yield* makeDexMonProcessWith(authEnv(issuer.jwksUrl))
        yield* dexmon.start
        // Valid for the whole run, with every scope: the fuzzer reaches each handler, not just the door,
        // and spoils the token itself in its credential cases.
        const token = yield* mint(key, { sub: "fuzz-user", scope: ALL, exp: 900 })
        yield* seedAndFuzz(
          dexmon,
          { authorization: `Bearer ${token}` },
          { seed: 16, randomCasesPerOperation: 30, maxCasesPerOperation: 400 }
        )
      }),
    { timeout: 240_000 }
  )

  it.live(
    "development caller (X-User-Id on loopback): the same requests, and hostile X-User-Id values, get no 5xx and change nothing",
    () =>
      Effect.gen(function* () {
        const dexmon = yield* makeDexMonProcess
        yield* dexmon.start
        // The same door-independent cases are covered above: here a lighter pass, for the X-User-Id values.
        yield* seedAndFuzz(
          dexmon,
          { "x-user-id": "fuzz-user" },
          { seed: 61, randomCasesPerOperation: 0, maxCasesPerOperation: 60 }
        )
      }),
    { timeout: 240_000 }
  )
})
