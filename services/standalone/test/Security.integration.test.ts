import { ALL, AUDIENCE, eventually, ISSUER, makeDexMonProcessWith, makeIssuer, mint } from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect } from "effect"
import { exportSPKI, SignJWT } from "jose"

const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")

interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly body: Record<string, unknown>
}
const call = (
  baseUrl: string,
  path: string,
  init: { token?: string; body?: unknown; method?: "GET" | "POST" | "PUT" } = {}
) =>
  Effect.promise(async (): Promise<Answer> => {
    const headers: Record<string, string> = { "content-type": "application/json" }
    if (init.token !== undefined) headers.authorization = `Bearer ${init.token}`
    const response = await fetch(`${baseUrl}${path}`, {
      method: init.method ?? (init.body === undefined ? "GET" : "POST"),
      headers,
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) })
    })
    const text = await response.text()
    return { status: response.status, headers: response.headers, body: text === "" ? {} : JSON.parse(text) }
  })

describe("OAuth2 bearer tokens (AUTH_ISSUER set)", () => {
  it.live(
    "every bad token gets 401, a missing scope 403, another user's sensor 403, and none of them changes anything",
    () =>
      Effect.gen(function* () {
        const issuer = yield* makeIssuer
        const key = yield* issuer.newKey("key-1", true)
        const rogue = yield* issuer.newKey("key-rogue", false)
        const dexmon = yield* makeDexMonProcessWith({
          AUTH_ISSUER: ISSUER,
          AUTH_AUDIENCE: AUDIENCE,
          AUTH_JWKS_URL: issuer.jwksUrl,
          AUTH_JWKS_COOLDOWN_SECONDS: "1"
        })
        yield* dexmon.start
        const now = yield* Clock.currentTimeMillis
        const range = `from=${new Date(now - 3_600_000).toISOString()}&to=${new Date(now + 3_600_000).toISOString()}`
        const reading = (value: number, at = now - 60_000) => ({
          sensor_id: "alice-cgm",
          timestamp: new Date(at).toISOString(),
          glucose_value: value
        })
        const alice = yield* mint(key, { sub: "alice", scope: ALL })
        const bob = yield* mint(key, { sub: "bob", scope: ALL })

        // Alice's sensor reading, low enough for an alert, is the state nothing below may change.
        const accepted = yield* call(dexmon.baseUrl, "/api/v1/glucose/sensor", { token: alice, body: reading(60) })
        assert.strictEqual(accepted.status, 202, JSON.stringify(accepted.body))
        const aliceReadings = () =>
          call(dexmon.baseUrl, `/api/v1/readings?${range}`, { token: alice }).pipe(
            Effect.map((answer) => answer.body.items as Array<Record<string, unknown>>)
          )
        const stored = yield* eventually(aliceReadings(), (items) => items.length === 1, {
          what: "Alice's reading stored",
          every: "50 millis",
          times: 400
        })

        const hmacWithPublicKey = yield* Effect.promise(async () =>
          new SignJWT({ scope: ALL })
            .setProtectedHeader({ alg: "HS256", kid: key.kid })
            .setIssuer(ISSUER)
            .setAudience(AUDIENCE)
            .setSubject("alice")
            .setExpirationTime("5m")
            .sign(new TextEncoder().encode(await exportSPKI(key.publicKey)))
        )
        const unsigned = `${base64url({ alg: "none", typ: "JWT" })}.${base64url({
          iss: ISSUER,
          aud: AUDIENCE,
          sub: "alice",
          scope: ALL,
          exp: Math.floor(now / 1000) + 300
        })}.`
        const refusals: ReadonlyArray<readonly [string, string | undefined, RegExp]> = [
          ["missing", undefined, /bearer token is required/],
          ["expired", yield* mint(key, { sub: "alice", scope: ALL, exp: -120 }), /expired/],
          ["not yet valid", yield* mint(key, { sub: "alice", scope: ALL, nbf: 600 }), /not valid yet/],
          ["wrong issuer", yield* mint(key, { sub: "alice", scope: ALL, iss: "https://evil.test/" }), /iss/],
          ["wrong audience", yield* mint(key, { sub: "alice", scope: ALL, aud: "other-api" }), /aud/],
          ["unknown key", yield* mint(rogue, { sub: "alice", scope: ALL }), /key the issuer does not publish/],
          ["alg none", unsigned, /not a valid signed JWT|algorithm/],
          ["HMAC signed with the public key", hmacWithPublicKey, /algorithm/],
          ["garbage", "not-a-jwt", /not a valid signed JWT/]
        ]
        for (const [name, token, why] of refusals) {
          const answer = yield* call(dexmon.baseUrl, "/api/v1/glucose/sensor", {
            ...(token === undefined ? {} : { token }),
            body: reading(300)
          })
          assert.strictEqual(answer.status, 401, `${name}: ${JSON.stringify(answer.body)}`)
          assert.strictEqual(answer.body._tag, "Unauthorized", name)
          assert.match(String(answer.body.message), why, name)
          assert.match(answer.headers.get("www-authenticate") ?? "", /^Bearer /, name)
          const read = yield* call(dexmon.baseUrl, `/api/v1/readings?${range}`, token === undefined ? {} : { token })
          assert.strictEqual(read.status, 401, `${name} (read)`)
        }

        // A token in the URL is refused, even alongside a good header.
        const inUrl = yield* call(dexmon.baseUrl, `/api/v1/readings?${range}&access_token=${alice}`)
        assert.strictEqual(inUrl.status, 401)
        const inUrlAndHeader = yield* call(dexmon.baseUrl, `/api/v1/glucose/sensor?access_token=${alice}`, {
          token: alice,
          body: reading(300)
        })
        assert.strictEqual(inUrlAndHeader.status, 401)

        // Scopes: each group needs its own.
        const readOnly = yield* mint(key, { sub: "alice", scope: "glucose:read" })
        const writeOnly = yield* mint(key, { sub: "alice", scope: "glucose:write" })
        const noScope = yield* mint(key, { sub: "alice" })
        for (const [token, path, body] of [
          [readOnly, "/api/v1/glucose/sensor", reading(300)],
          [readOnly, "/api/v1/glucose/manual", reading(300)],
          [noScope, "/api/v1/glucose/sensor", reading(300)],
          [writeOnly, `/api/v1/readings?${range}`, undefined],
          [readOnly, `/api/v1/alerts?${range}`, undefined],
          [readOnly, "/api/v1/alerts/active", undefined]
        ] as const) {
          const answer = yield* call(dexmon.baseUrl, path, { token, ...(body === undefined ? {} : { body }) })
          assert.strictEqual(answer.status, 403, `${path}: ${JSON.stringify(answer.body)}`)
          assert.strictEqual(answer.body._tag, "Forbidden")
        }
        assert.strictEqual((yield* call(dexmon.baseUrl, `/api/v1/readings?${range}`, { token: readOnly })).status, 200)
        // Reading alerts and settings is alerts:read; changing settings, acknowledging, snoozing, stopping is alerts:write.
        const alertsReadOnly = yield* mint(key, { sub: "alice", scope: "alerts:read" })
        const settingsRead = yield* call(dexmon.baseUrl, "/api/v1/alert-settings", { token: alertsReadOnly })
        assert.strictEqual(settingsRead.status, 200, JSON.stringify(settingsRead.body))
        for (const [path, method, body] of [
          ["/api/v1/alert-settings", "PUT", {}],
          ["/api/v1/sensors/alice-cgm/stop", "POST", undefined],
          [`/api/v1/alerts/${"0".repeat(8)}-0000-8000-8000-${"0".repeat(12)}/acknowledge`, "POST", undefined]
        ] as const) {
          const answer = yield* call(dexmon.baseUrl, path, {
            token: alertsReadOnly,
            method,
            ...(body === undefined ? {} : { body })
          })
          assert.strictEqual(answer.status, 403, `${path}: ${JSON.stringify(answer.body)}`)
          assert.match(String(answer.body.message), /alerts:write/)
        }
        const unchanged = yield* call(dexmon.baseUrl, "/api/v1/alert-settings", { token: alertsReadOnly })
        assert.strictEqual(unchanged.headers.get("etag"), settingsRead.headers.get("etag"))

        // Bob may not post to Alice's sensor, nor see her readings or alerts.
        const intrusion = yield* call(dexmon.baseUrl, "/api/v1/glucose/sensor", { token: bob, body: reading(300) })
        assert.strictEqual(intrusion.status, 403)
        assert.strictEqual(
          intrusion.body.message,
          "a sensor in this batch belongs to another user; nothing was accepted"
        )
        const bobBatch = yield* call(dexmon.baseUrl, "/api/v1/glucose/sensor", {
          token: bob,
          body: { readings: [{ ...reading(120), sensor_id: "bob-cgm" }, reading(300, now - 30_000)] }
        })
        assert.strictEqual(bobBatch.status, 403, "a batch with one foreign sensor is refused whole")
        const bobReads = yield* call(dexmon.baseUrl, `/api/v1/readings?${range}`, { token: bob })
        assert.deepStrictEqual(bobReads.body.items, [])
        const aliceReading = stored[0]!
        const bobGet = yield* call(
          dexmon.baseUrl,
          `/api/v1/readings/alice-cgm/${encodeURIComponent(String(aliceReading.timestamp))}`,
          { token: bob }
        )
        assert.strictEqual(bobGet.status, 404)
        const aliceAlerts = yield* eventually(
          call(dexmon.baseUrl, `/api/v1/alerts?${range}`, { token: alice }),
          (answer) => (answer.body.items as Array<unknown>).length === 1,
          { what: "Alice's LOW alert raised", every: "50 millis", times: 400 }
        )
        const aliceLow = (aliceAlerts.body.items as Array<Record<string, unknown>>)[0]!
        assert.deepStrictEqual(
          [aliceLow.alert_type, aliceLow.status, aliceLow.glucose_value, aliceLow.ended_at],
          ["LOW", "ACTIVE", 60, null]
        )
        assert.deepStrictEqual((yield* call(dexmon.baseUrl, `/api/v1/alerts?${range}`, { token: bob })).body.items, [])
        // Nor her episode by its id, nor among the open ones; and reading one by id needs the alerts scope.
        const aliceLowPath = `/api/v1/alerts/${String(aliceLow.alert_id)}`
        assert.strictEqual((yield* call(dexmon.baseUrl, aliceLowPath, { token: alice })).status, 200)
        assert.strictEqual((yield* call(dexmon.baseUrl, aliceLowPath, { token: bob })).status, 404)
        assert.strictEqual((yield* call(dexmon.baseUrl, aliceLowPath, { token: readOnly })).status, 403)
        assert.deepStrictEqual((yield* call(dexmon.baseUrl, "/api/v1/alerts/active", { token: bob })).body.items, [])

        // Nothing refused reached the store: a later reading of Alice's, once stored, finds hers unchanged and alone.
        const markerAt = now - 10_000
        const marker = yield* call(dexmon.baseUrl, "/api/v1/glucose/sensor", {
          token: alice,
          body: reading(110, markerAt)
        })
        assert.strictEqual(marker.status, 202)
        const after = yield* eventually(aliceReadings(), (items) => items.length === 2, {
          what: "Alice's marker reading stored beside the first",
          every: "50 millis",
          times: 400
        })
        assert.deepStrictEqual(after[0], aliceReading)
        assert.strictEqual(after[0]!.glucose_value, 60)
        assert.strictEqual(after[0]!.version, 1)
        // Nor the notifier: once her LOW episode shows the marker (its first clear reading), it is still her only
        // alert and still open. A refused 300 that got through would have opened a HIGH, and as a second clear
        // reading would have ended the LOW.
        const episodes = yield* eventually(
          call(dexmon.baseUrl, `/api/v1/alerts?${range}`, { token: alice }).pipe(
            Effect.map((answer) => answer.body.items as Array<Record<string, unknown>>)
          ),
          (items) => Date.parse(String(items[0]?.last_reading_at)) === markerAt,
          { what: "Alice's LOW episode showing the marker reading", every: "50 millis", times: 400 }
        )
        assert.deepStrictEqual(episodes, [
          { ...aliceLow, last_value: 110, last_reading_at: episodes[0]?.last_reading_at }
        ])

        // A key the issuer starts publishing later is fetched on first sight of its key id.
        const rotated = yield* issuer.newKey("key-2", true)
        const fromNewKey = yield* mint(rotated, { sub: "alice", scope: ALL })
        const answered = yield* eventually(
          call(dexmon.baseUrl, `/api/v1/readings?${range}`, { token: fromNewKey }),
          (answer) => answer.status === 200,
          { what: "a token of the newly published key accepted", every: "200 millis", times: 50 }
        )
        assert.strictEqual(answered.status, 200)
      }),
    120_000
  )

  it.live("a caller over its rate limit gets 429 with Retry-After, and is served again after it", () =>
    Effect.gen(function* () {
      const issuer = yield* makeIssuer
      const key = yield* issuer.newKey("key-1", true)
      const dexmon = yield* makeDexMonProcessWith({
        AUTH_ISSUER: ISSUER,
        AUTH_AUDIENCE: AUDIENCE,
        AUTH_JWKS_URL: issuer.jwksUrl,
        DEXMON_RATE_LIMIT_PER_SECOND: "1",
        DEXMON_RATE_LIMIT_BURST: "5"
      })
      yield* dexmon.start
      const now = yield* Clock.currentTimeMillis
      const path = `/api/v1/readings?from=${new Date(now - 60_000).toISOString()}&to=${new Date(now).toISOString()}`
      const token = yield* mint(key, { sub: "carol", scope: ALL })
      const other = yield* mint(key, { sub: "dave", scope: ALL })
      const answers = yield* Effect.forEach(Array.from({ length: 8 }), () => call(dexmon.baseUrl, path, { token }))
      const limited = answers.filter((answer) => answer.status === 429)
      assert.isAtLeast(limited.length, 2, answers.map((answer) => answer.status).join(","))
      assert.isTrue(
        answers.slice(0, 5).every((answer) => answer.status === 200),
        "the burst is served"
      )
      const retryAfter = Number(limited[0]!.headers.get("retry-after"))
      assert.isAtLeast(retryAfter, 1)
      assert.strictEqual(limited[0]!.body._tag, "TooManyRequests")
      assert.strictEqual(limited[0]!.body.retry_after_seconds, retryAfter)
      // The limit is per user: another caller is served meanwhile.
      assert.strictEqual((yield* call(dexmon.baseUrl, path, { token: other })).status, 200)
      yield* Effect.sleep(`${retryAfter} seconds`)
      assert.strictEqual((yield* call(dexmon.baseUrl, path, { token })).status, 200)
    })
  )
})

describe("security configuration", () => {
  it.live("SECURITY_DISABLED=true warns at start and serves the development caller", () =>
    Effect.gen(function* () {
      const dexmon = yield* makeDexMonProcessWith({ SECURITY_DISABLED: "true" })
      yield* dexmon.start
      assert.match(dexmon.output(), /SECURITY_DISABLED=true: requests are not authenticated/)
      const now = yield* Clock.currentTimeMillis
      const answer = yield* call(dexmon.baseUrl, "/api/v1/glucose/sensor", {
        body: { sensor_id: "dev-cgm", timestamp: new Date(now - 1000).toISOString(), glucose_value: 100 }
      })
      assert.strictEqual(answer.status, 202)
    })
  )

  for (const [name, settings, why] of [
    ["production without an issuer", { DEXMON_PROFILE: "production" }, /needs AUTH_ISSUER/],
    [
      "production with security disabled",
      { DEXMON_PROFILE: "production", SECURITY_DISABLED: "true" },
      /SECURITY_DISABLED=true is refused/
    ],
    ["listening beyond loopback without an issuer", { HOST: "0.0.0.0" }, /reachable from other machines/]
  ] as const) {
    it.live(`refuses to start: ${name}`, () =>
      Effect.gen(function* () {
        const dexmon = yield* makeDexMonProcessWith({})
        // Every store is given, so the only thing missing is the issuer.
        const { code, output } = yield* dexmon.runToExit({
          ...settings,
          ...(settings.DEXMON_PROFILE === "production"
            ? {
                DATABASE_URL: process.env.DATABASE_URL!,
                KAFKA_BROKERS: process.env.KAFKA_BROKERS!,
                CASSANDRA_CONTACT_POINTS: process.env.CASSANDRA_CONTACT_POINTS!,
                S3_BUCKET: process.env.S3_BUCKET!
              }
            : {})
        })
        assert.notStrictEqual(code, 0)
        assert.match(output, why)
      })
    )
  }
})
