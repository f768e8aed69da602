import { createHash } from "node:crypto"
import { request as httpRequest } from "node:http"
import { layerSpanProcessor } from "@dexmon/observability"
import {
  ALL,
  authEnv,
  eventually,
  type FinishedSpan,
  freePort,
  freshDatabase,
  makeDexMonProcessWith,
  makeIssuer,
  makeLogCapture,
  makeSpanCollector,
  makeWebhookReceiver,
  mint,
  SERVER_SPAN,
  spanText,
  tempDir
} from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { Clock, ConfigProvider, DateTime, Effect, Layer } from "effect"
import { StandaloneLive } from "../../src/Standalone.ts"

const FROM = "2026-01-01T00:00:00.000Z"
const TO = "2026-01-02T00:00:00.000Z"

/** A raw request: the status and the body as sent. */
const call = (url: string, init: { readonly headers?: Record<string, string>; readonly body?: unknown } = {}) =>
  Effect.promise(async () => {
    const response = await fetch(url, {
      method: init.body === undefined ? "GET" : "POST",
      headers: { ...(init.body === undefined ? {} : { "content-type": "application/json" }), ...init.headers },
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) })
    })
    return { status: response.status, text: await response.text() }
  })

/** A GET with the request target exactly as given (an absolute form, say), which `fetch` would normalise. */
const rawGet = (port: number, target: string) =>
  Effect.callback<{ readonly status: number; readonly text: string }>((resume) => {
    const request = httpRequest({ host: "127.0.0.1", port, path: target, method: "GET" }, (response) => {
      let text = ""
      response.setEncoding("utf8")
      response.on("data", (chunk: string) => {
        text += chunk
      })
      response.on("end", () => resume(Effect.succeed({ status: response.statusCode ?? 0, text })))
    })
    request.on("error", (error) => resume(Effect.die(error)))
    request.end()
  })

/**
 * Unique marker values, one per place a secret can come in, so a hit names
 * where it leaked from. Each is a value no redaction may let through.
 */
const makeMarkers = (run: string) => {
  const marker = (where: string) => `leak${run}${where.replace(/[^a-z0-9]/gi, "")}`
  return {
    query: Object.fromEntries(
      ["access_token", "token", "secret", "api_key", "api-key", "apikey", "password", "refresh_token"].map((name) => [
        name,
        marker(`q${name}`)
      ])
    ) as Record<string, string>,
    header: Object.fromEntries(
      ["api-secret", "cookie", "x-api-key", "proxy-authorization"].map((name) => [name, marker(`h${name}`)])
    ) as Record<string, string>,
    badBearer: marker("badbearer"),
    webhook: marker("webhook"),
    jwks: marker("jwks"),
    dbPassword: marker("dbpassword")
  }
}

/** Every marker value of `markers`, plus the extra secrets (a real bearer token). */
const everyMarker = (markers: ReturnType<typeof makeMarkers>, extra: ReadonlyArray<string>) => [
  ...Object.values(markers.query),
  ...Object.values(markers.header),
  markers.badBearer,
  markers.webhook,
  markers.jwks,
  markers.dbPassword,
  ...extra
]

/** Fails naming each secret found in `text`, with the text around it. */
const assertNoSecret = (where: string, text: string, secrets: ReadonlyArray<string>) => {
  const found = secrets
    .filter((secret) => text.includes(secret))
    .map((secret) => {
      const at = text.indexOf(secret)
      return `${secret} in …${text.slice(Math.max(0, at - 600), at + secret.length + 60)}…`
    })
  assert.deepStrictEqual(found, [], `secrets recorded in ${where}`)
}

/** `?name=value&...` of every query marker, after the given leading parameters. */
const secretQuery = (markers: ReturnType<typeof makeMarkers>, names: ReadonlyArray<string>, lead: string) =>
  [lead, ...names.map((name) => `${encodeURIComponent(name)}=${markers.query[name]}`)].filter((p) => p !== "").join("&")

describe("secrets are never recorded (issue 16)", () => {
  it.live(
    "tokens, keys and passwords in queries, headers, a webhook URL and DATABASE_URL reach no span, log line or metric; the spans show them redacted",
    () =>
      Effect.gen(function* () {
        const run = Date.now().toString(36)
        const markers = makeMarkers(run)
        const issuer = yield* makeIssuer
        const key = yield* issuer.newKey("secrets-key", true)
        const token = yield* mint(key, { sub: "secrets-user", scope: ALL })
        const database = yield* freshDatabase({ name: `dexmon_secrets_${run}` })
        // Trust authentication: the server takes any password, so the marked one is really used.
        const databaseUrl = new URL(database.url)
        databaseUrl.username = "postgres"
        databaseUrl.password = markers.dbPassword
        const hook = yield* makeWebhookReceiver(() => ({ status: 200 }))
        const port = yield* freePort
        const env = {
          PORT: String(port),
          HOST: "127.0.0.1",
          ...authEnv(`${issuer.jwksUrl}?token=${markers.jwks}`),
          DATABASE_URL: databaseUrl.toString(),
          DEXMON_DATA_DIR: yield* tempDir("secrets"),
          DEXMON_ARCHIVE_EVERY: "off",
          DEXMON_RATE_LIMIT_PER_SECOND: "0",
          PATH: process.env.PATH ?? ""
        }
        const collector = makeSpanCollector()
        const logs = makeLogCapture()
        // The whole of DexMon in this process, as `pnpm start` composes it: the spans of its HTTP server,
        // consumers and deliverer go to the collector, its log lines to the capture as well.
        yield* Layer.build(
          StandaloneLive.pipe(
            Layer.provide(layerSpanProcessor("dexmon-secrets-test", collector.processor)),
            Layer.provide(logs.layer),
            Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env })))
          )
        )
        const base = `http://127.0.0.1:${port}`
        const bearer = { authorization: `Bearer ${token}` }

        // Served: every secret query name and secret header on an authenticated read.
        const served = yield* call(
          `${base}/api/v1/readings?${secretQuery(markers, ["token", "secret", "api_key", "api-key", "apikey", "password", "refresh_token"], `from=${FROM}&to=${TO}`)}`,
          { headers: { ...bearer, ...markers.header } }
        )
        assert.strictEqual(served.status, 200, served.text)
        // Refused: a token in the URL (401), a bad bearer token (401), an unknown route (404), a bad query (400).
        const inUrl = yield* call(
          `${base}/api/v1/readings?from=${FROM}&to=${TO}&access_token=${markers.query.access_token}`
        )
        assert.strictEqual(inUrl.status, 401, inUrl.text)
        const badToken = yield* call(`${base}/api/v1/readings?from=${FROM}&to=${TO}&token=${markers.query.token}`, {
          headers: { authorization: `Bearer ${markers.badBearer}` }
        })
        assert.strictEqual(badToken.status, 401, badToken.text)
        const unknown = yield* call(`${base}/api/v1/no-such-route?secret=${markers.query.secret}`, {
          headers: { "api-secret": markers.header["api-secret"]! }
        })
        assert.strictEqual(unknown.status, 404, unknown.text)
        const invalid = yield* call(
          `${base}/api/v1/readings?from=yesterday&to=${TO}&api_key=${markers.query.api_key}`,
          {
            headers: bearer
          }
        )
        assert.strictEqual(invalid.status, 400, invalid.text)

        // A webhook whose URL carries a token: registered, then sent an urgent low.
        const registered = yield* call(`${base}/api/v1/webhooks`, {
          headers: bearer,
          body: { url: `${hook.url}?token=${markers.webhook}` }
        })
        assert.strictEqual(registered.status, 201, registered.text)
        hook.useSecret(JSON.parse(registered.text).secret)
        const now = yield* Clock.currentTimeMillis
        const posted = yield* call(`${base}/api/v1/glucose/sensor`, {
          headers: bearer,
          body: {
            sensor_id: `secrets-cgm-${run}`,
            timestamp: DateTime.formatIso(DateTime.makeUnsafe(now - 60_000)),
            glucose_value: 50
          }
        })
        assert.strictEqual(posted.status, 202, posted.text)
        yield* eventually(Effect.sync(hook.received), (received) => received.some((r) => r.verified), {
          what: "the webhook delivery",
          times: 300
        })
        // Nightscout's credentials, used as its tools send them: the secret's SHA-1 in `api-secret` and `?secret=`,
        // a token in `?token=` and in the path of the JWT exchange, and the JWT as a bearer.
        const apiSecret = JSON.parse(
          (yield* call(`${base}/api/v1/nightscout/credentials`, { headers: bearer, body: { kind: "api_secret" } })).text
        ).api_secret as string
        const readable = JSON.parse(
          (yield* call(`${base}/api/v1/nightscout/credentials`, { headers: bearer, body: { kind: "token" } })).text
        ).token as string
        const secretSha1 = createHash("sha1").update(apiSecret).digest("hex")
        const uploaded = yield* call(`${base}/api/v1/entries`, {
          headers: { "api-secret": secretSha1 },
          body: [{ sgv: 120, date: now - 120_000, device: "xDrip-DexcomG6" }]
        })
        assert.strictEqual(uploaded.status, 200, uploaded.text)
        assert.strictEqual((yield* call(`${base}/api/v1/experiments/test?secret=${secretSha1}`)).status, 200)
        assert.strictEqual((yield* call(`${base}/api/v1/entries.json?token=${readable}`)).status, 200)
        const grant = yield* call(`${base}/api/v2/authorization/request/${readable}`)
        assert.strictEqual(grant.status, 200, grant.text)
        const jwt = JSON.parse(grant.text).token as string
        const followed = yield* call(`${base}/api/v1/status.json`, { headers: { authorization: `Bearer ${jwt}` } })
        assert.strictEqual(followed.status, 200, followed.text)
        // The same exchange spelt as the router still matches it: an escape in the path, the absolute form a
        // forward proxy sends.
        const spelt = JSON.parse((yield* call(`${base}/api/v2/authorization/%72equest/${readable}`)).text) as {
          readonly token?: string
        }
        assert.isString(spelt.token)
        const absolute = yield* rawGet(port, `http://dexmon.example/api/v2/authorization/request/${readable}`)
        assert.strictEqual(absolute.status, 200, absolute.text)
        const nightscoutSecrets = [apiSecret, secretSha1, readable, jwt, spelt.token!, JSON.parse(absolute.text).token]

        const metrics = yield* call(`${base}/metrics`)

        // Every request's server span has ended (the /metrics scrape's included).
        const servers = () => collector.spans.filter((span) => span.kind === SERVER_SPAN)
        yield* eventually(
          Effect.sync(servers),
          (spans) => spans.some((span) => String(span.attributes["url.path"]) === "/metrics"),
          { what: "the server span of the /metrics scrape" }
        )
        const spanOf = (path: string, status: number) => {
          const span = servers().find(
            (s: FinishedSpan) =>
              s.attributes["url.path"] === path && s.attributes["http.response.status_code"] === status
          )
          assert.isDefined(span, `a server span of ${path} answered ${status}`)
          return span!
        }

        // Recorded, but redacted: the query keeps its names with REDACTED values, the credentials are <redacted>.
        const read = spanOf("/api/v1/readings", 200)
        for (const name of ["token", "secret", "api_key", "api-key", "apikey", "password", "refresh_token"]) {
          assert.include(String(read.attributes["url.query"]), `${encodeURIComponent(name)}=REDACTED`, name)
          assert.include(String(read.attributes["url.full"]), `${encodeURIComponent(name)}=REDACTED`, name)
        }
        for (const name of ["authorization", ...Object.keys(markers.header)]) {
          assert.strictEqual(read.attributes[`http.request.header.${name}`], "<redacted>", name)
        }
        assert.include(String(spanOf("/api/v1/readings", 401).attributes["url.query"]), "=REDACTED")
        assert.include(String(spanOf("/api/v1/no-such-route", 404).attributes["url.query"]), "secret=REDACTED")
        assert.include(String(spanOf("/api/v1/readings", 400).attributes["url.query"]), "api_key=REDACTED")
        const refusedInUrl = servers().find((s) => String(s.attributes["url.query"]).includes("access_token="))
        assert.include(String(refusedInUrl?.attributes["url.query"]), "access_token=REDACTED")

        // The token exchange, whose path holds the token, is not traced; the other Nightscout requests are, redacted.
        assert.isFalse(servers().some((span) => String(span.attributes["url.path"]).includes("/authorization/")))
        assert.include(String(spanOf("/api/v1/entries.json", 200).attributes["url.query"]), "token=REDACTED")
        assert.strictEqual(spanOf("/api/v1/entries", 200).attributes["http.request.header.api-secret"], "<redacted>")

        // Nothing secret anywhere: spans (attributes, events, status), log lines, the metrics exposition.
        const secrets = everyMarker(markers, [token, ...nightscoutSecrets])
        assertNoSecret("spans", collector.spans.map(spanText).join("\n"), secrets)
        assertNoSecret("logs", logs.text(), secrets)
        assertNoSecret("/metrics", metrics.text, secrets)
      }),
    { timeout: 180_000 }
  )

  it.live(
    "a DexMon process writes no password of DATABASE_URL, no JWKS URL token and no request secret to its output or /metrics",
    () =>
      Effect.gen(function* () {
        const run = Date.now().toString(36)
        const markers = makeMarkers(run)
        const issuer = yield* makeIssuer
        const key = yield* issuer.newKey("secrets-key", true)
        const token = yield* mint(key, { sub: "secrets-user", scope: ALL })
        const database = yield* freshDatabase({ name: `dexmon_secretsp_${run}` })
        const databaseUrl = new URL(database.url)
        databaseUrl.username = "postgres"
        databaseUrl.password = markers.dbPassword
        const dexmon = yield* makeDexMonProcessWith({
          ...authEnv(`${issuer.jwksUrl}?token=${markers.jwks}`),
          DATABASE_URL: databaseUrl.toString()
        })
        yield* dexmon.start
        const base = dexmon.baseUrl
        const served = yield* call(
          `${base}/api/v1/readings?${secretQuery(markers, ["token", "secret", "api_key", "password"], `from=${FROM}&to=${TO}`)}`,
          { headers: { authorization: `Bearer ${token}`, ...markers.header } }
        )
        assert.strictEqual(served.status, 200, served.text)
        const inUrl = yield* call(
          `${base}/api/v1/readings?from=${FROM}&to=${TO}&access_token=${markers.query.access_token}`
        )
        assert.strictEqual(inUrl.status, 401, inUrl.text)
        const badToken = yield* call(
          `${base}/api/v1/readings?from=${FROM}&to=${TO}&api-key=${markers.query["api-key"]}`,
          {
            headers: { authorization: `Bearer ${markers.badBearer}` }
          }
        )
        assert.strictEqual(badToken.status, 401, badToken.text)
        const unknown = yield* call(`${base}/nowhere?apikey=${markers.query.apikey}`, {
          headers: { "api-secret": markers.header["api-secret"]! }
        })
        assert.strictEqual(unknown.status, 404, unknown.text)
        const metrics = yield* call(`${base}/metrics`)
        // The process logs each response once sent; the last two are in, then it stops: its whole output is in.
        yield* eventually(
          Effect.sync(dexmon.output),
          (output) => output.includes(`"http.url":"/nowhere"`) && output.includes(`"http.url":"/metrics"`),
          { what: "the process's log lines of the 404 and the /metrics scrape" }
        )
        yield* dexmon.stop
        const output = dexmon.output()
        // The line that names the JWKS URL is there, with the token blanked.
        assert.include(output, "token=REDACTED")
        assertNoSecret("the process's output", output, everyMarker(markers, [token]))
        assertNoSecret("/metrics", metrics.text, everyMarker(markers, [token]))
      }),
    { timeout: 180_000 }
  )
})
