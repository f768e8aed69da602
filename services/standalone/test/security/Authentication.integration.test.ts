import { networkInterfaces } from "node:os"
import { ALL, authEnv, eventually, makeDexMonProcessWith, makeIssuer, mint } from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect } from "effect"

interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly body: Record<string, unknown>
}
const call = (
  baseUrl: string,
  path: string,
  init: { token?: string; body?: unknown; headers?: Record<string, string> } = {}
) =>
  Effect.promise(async (): Promise<Answer> => {
    const headers: Record<string, string> = { "content-type": "application/json", ...init.headers }
    if (init.token !== undefined) headers.authorization = `Bearer ${init.token}`
    const response = await fetch(`${baseUrl}${path}`, {
      method: init.body === undefined ? "GET" : "POST",
      headers,
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) })
    })
    const text = await response.text()
    return { status: response.status, headers: response.headers, body: text === "" ? {} : JSON.parse(text) }
  })

/** The last hour and the next, as the readings query string. */
const window = Effect.map(Clock.currentTimeMillis, (now) => ({
  now,
  range: `from=${new Date(now - 3_600_000).toISOString()}&to=${new Date(now + 3_600_000).toISOString()}`
}))

const reading = (sensor: string, at: number, value: number) => ({
  sensor_id: sensor,
  timestamp: new Date(at).toISOString(),
  glucose_value: value
})

/** The 503 a request gets while the issuer's keys cannot be fetched: JSON, the reason, when to retry. */
const assertKeysUnavailable = (answer: Answer, what: string) => {
  assert.strictEqual(answer.status, 503, `${what}: ${JSON.stringify(answer.body)}`)
  assert.strictEqual(answer.body._tag, "ServiceUnavailable", what)
  assert.match(String(answer.body.message), /issuer's keys \(JWKS\) cannot be fetched/, what)
  assert.isAtLeast(Number(answer.headers.get("retry-after")), 1, what)
}

/** Every store is given, so under production nothing but the checked setting can refuse the start. */
const productionStores = () => ({
  DATABASE_URL: process.env.DATABASE_URL!,
  KAFKA_BROKERS: process.env.KAFKA_BROKERS!,
  CASSANDRA_CONTACT_POINTS: process.env.CASSANDRA_CONTACT_POINTS!,
  S3_BUCKET: process.env.S3_BUCKET!
})

/**
 * This machine's own address on its network: one other machines reach, and one it can listen on, so only
 * the check (not a failing `listen`) can stop the start.
 */
const lanAddress = Object.values(networkInterfaces())
  .flat()
  .find((address) => address !== undefined && address.family === "IPv4" && !address.internal)?.address

describe("the development override (SECURITY_DISABLED=true) listens on loopback only", () => {
  it.live.each([
    ["0.0.0.0", "development"],
    ["::", "development"],
    ...(lanAddress === undefined ? [] : [[lanAddress, "development"] as const]),
    ["0.0.0.0", "production"],
    ["::", "production"]
  ] as const)("refuses to start with HOST=%s under DEXMON_PROFILE=%s", ([host, profile]) =>
    Effect.gen(function* () {
      const dexmon = yield* makeDexMonProcessWith({
        SECURITY_DISABLED: "true",
        HOST: host,
        DEXMON_PROFILE: profile,
        ...(profile === "production" ? productionStores() : {})
      })
      // Started and served, anyone could act as anyone here: that is the failure this test exists for.
      const started = yield* Effect.exit(dexmon.start)
      assert.isTrue(started._tag === "Failure", `DexMon started with SECURITY_DISABLED=true on HOST=${host}`)
      assert.isTrue(dexmon.hasEnded(), "the process exited on its own")
      const output = dexmon.output()
      assert.include(output, `SECURITY_DISABLED=true is refused with HOST=${host}`)
      assert.match(output, /reachable from other machines/)
      assert.match(output, /anyone reaching it could act as any user \(X-User-Id\)/)
    })
  )

  it.live("with no configuration at all (`pnpm start`) it starts on loopback with the development caller", () =>
    Effect.gen(function* () {
      const dexmon = yield* makeDexMonProcessWith({})
      yield* dexmon.start
      assert.match(dexmon.output(), /no AUTH_ISSUER: security is disabled while listening on 127\.0\.0\.1 only/)
      const { now } = yield* window
      const answer = yield* call(dexmon.baseUrl, "/api/v1/glucose/sensor", {
        body: reading("dev-cgm", now - 1000, 100)
      })
      assert.strictEqual(answer.status, 202, JSON.stringify(answer.body))
    })
  )

  it.live("starts on 127.0.0.1, serves the development caller, and refuses a token in the URL there too", () =>
    Effect.gen(function* () {
      const dexmon = yield* makeDexMonProcessWith({ SECURITY_DISABLED: "true", HOST: "127.0.0.1" })
      yield* dexmon.start
      assert.match(dexmon.output(), /SECURITY_DISABLED=true: requests are not authenticated/)
      const { now, range } = yield* window
      const asDev = { "x-user-id": "dev-url" }
      // A token in the URL gets 401 even though the development caller needs none, and nothing is stored.
      for (const query of ["access_token=abc", "ACCESS_TOKEN=abc", "access%5Ftoken=abc"]) {
        const refused = yield* call(dexmon.baseUrl, `/api/v1/glucose/sensor?${query}`, {
          headers: asDev,
          body: reading("dev-url-cgm", now - 60_000, 300)
        })
        assert.strictEqual(refused.status, 401, `${query}: ${JSON.stringify(refused.body)}`)
        assert.strictEqual(refused.body._tag, "Unauthorized")
        assert.match(String(refused.body.message), /tokens in the URL are refused/)
      }
      const marker = yield* call(dexmon.baseUrl, "/api/v1/glucose/sensor", {
        headers: asDev,
        body: reading("dev-url-cgm", now - 10_000, 110)
      })
      assert.strictEqual(marker.status, 202, JSON.stringify(marker.body))
      const stored = yield* eventually(
        call(dexmon.baseUrl, `/api/v1/readings?${range}`, { headers: asDev }),
        (answer) => (answer.body.items as Array<unknown> | undefined)?.length === 1,
        { what: "the marker reading stored", every: "50 millis", times: 400 }
      )
      const items = stored.body.items as Array<Record<string, unknown>>
      assert.deepStrictEqual(
        items.map((item) => item.glucose_value),
        [110],
        "only the marker: none of the refused readings"
      )
    })
  )
})

describe("an issuer whose keys (JWKS) cannot be fetched", () => {
  it.live(
    "its port closed: cached keys keep verifying, a new key id gets 503 (not 401) and nothing is stored, then works once it is back",
    () =>
      Effect.gen(function* () {
        const issuer = yield* makeIssuer
        const key = yield* issuer.newKey("key-1", true)
        const dexmon = yield* makeDexMonProcessWith({
          ...authEnv(issuer.jwksUrl),
          AUTH_JWKS_COOLDOWN_SECONDS: "0",
          AUTH_JWKS_TIMEOUT_SECONDS: "1"
        })
        yield* dexmon.start
        const { now, range } = yield* window
        const alice = yield* mint(key, { sub: "alice", scope: ALL })
        assert.strictEqual((yield* call(dexmon.baseUrl, `/api/v1/readings?${range}`, { token: alice })).status, 200)

        yield* issuer.stop
        const rotated = yield* issuer.newKey("key-2", true)
        const fromRotated = yield* mint(rotated, { sub: "alice", scope: ALL })
        const cached = yield* call(dexmon.baseUrl, `/api/v1/readings?${range}`, { token: alice })
        assert.strictEqual(cached.status, 200, `a cached key while the issuer is down: ${JSON.stringify(cached.body)}`)
        assertKeysUnavailable(
          yield* call(dexmon.baseUrl, `/api/v1/readings?${range}`, { token: fromRotated }),
          "a new key id while the issuer is down"
        )
        assertKeysUnavailable(
          yield* call(dexmon.baseUrl, "/api/v1/glucose/sensor", {
            token: fromRotated,
            body: reading("alice-cgm", now - 60_000, 300)
          }),
          "a reading posted with a new key id while the issuer is down"
        )
        assert.match(dexmon.output(), /the issuer's keys \(JWKS at http:\/\/127\.0\.0\.1:\d+\/jwks\) cannot be fetched/)
        assert.notInclude(dexmon.output(), fromRotated, "the token is never logged")

        yield* issuer.serve
        yield* eventually(
          call(dexmon.baseUrl, `/api/v1/readings?${range}`, { token: fromRotated }),
          (answer) => answer.status === 200,
          { what: "the new key accepted once the issuer is back", every: "200 millis", times: 100 }
        )
        // The reading answered 503 was not accepted: once a later one is stored, it is alone.
        const marker = yield* call(dexmon.baseUrl, "/api/v1/glucose/sensor", {
          token: fromRotated,
          body: reading("alice-cgm", now - 10_000, 110)
        })
        assert.strictEqual(marker.status, 202, JSON.stringify(marker.body))
        const stored = yield* eventually(
          call(dexmon.baseUrl, `/api/v1/readings?${range}`, { token: alice }),
          (answer) => (answer.body.items as Array<unknown> | undefined)?.length === 1,
          { what: "the marker reading stored", every: "50 millis", times: 400 }
        )
        assert.deepStrictEqual(
          (stored.body.items as Array<Record<string, unknown>>).map((item) => item.glucose_value),
          [110]
        )
      }),
    120_000
  )

  it.live(
    "hanging: a known key id never waits on the issuer, a new one gets 503 once the fetch gives up, and the issuer is not asked again within the cooldown",
    () =>
      Effect.gen(function* () {
        const issuer = yield* makeIssuer
        const key = yield* issuer.newKey("key-1", true)
        const dexmon = yield* makeDexMonProcessWith({
          ...authEnv(issuer.jwksUrl),
          AUTH_JWKS_COOLDOWN_SECONDS: "2",
          AUTH_JWKS_TIMEOUT_SECONDS: "1"
        })
        yield* dexmon.start
        const { range } = yield* window
        const alice = yield* mint(key, { sub: "alice", scope: ALL })
        assert.strictEqual((yield* call(dexmon.baseUrl, `/api/v1/readings?${range}`, { token: alice })).status, 200)

        yield* issuer.hang
        const asked = issuer.fetches()
        for (let i = 0; i < 3; i++) {
          const cached = yield* call(dexmon.baseUrl, `/api/v1/readings?${range}`, { token: alice })
          assert.strictEqual(cached.status, 200, JSON.stringify(cached.body))
        }
        assert.strictEqual(issuer.fetches(), asked, "a known key id does not ask the issuer")

        // Published while DexMon cannot see it. Within the cooldown of the last successful fetch the issuer is
        // not asked, and the key id is answered as unknown (401); after it, the one fetch hangs, is given up
        // after AUTH_JWKS_TIMEOUT_SECONDS, and the answer is 503: the request does not hang with it.
        const rotated = yield* issuer.newKey("key-2", true)
        const fromRotated = yield* mint(rotated, { sub: "alice", scope: ALL })
        const statuses: Array<number> = []
        const unavailable = yield* eventually(
          call(dexmon.baseUrl, `/api/v1/readings?${range}`, { token: fromRotated }).pipe(
            Effect.tap((answer) => Effect.sync(() => statuses.push(answer.status)))
          ),
          (answer) => answer.status === 503,
          { what: "a new key id answered 503 while the issuer hangs", every: "200 millis", times: 100 }
        )
        assertKeysUnavailable(unavailable, "a new key id while the issuer hangs")
        assert.isTrue(
          statuses.every((status) => status === 401 || status === 503),
          statuses.join(",")
        )
        assert.strictEqual(issuer.fetches(), asked + 1, "one fetch, given up")
        assert.match(dexmon.output(), /cannot be fetched: no answer within 1 s/)
        // Within the cooldown after a failed fetch: 503 at once, without asking the hanging issuer again.
        assertKeysUnavailable(
          yield* call(dexmon.baseUrl, `/api/v1/readings?${range}`, { token: fromRotated }),
          "again within the cooldown"
        )
        assert.strictEqual(issuer.fetches(), asked + 1, "not asked again within the cooldown")
        assert.strictEqual((yield* call(dexmon.baseUrl, `/api/v1/readings?${range}`, { token: alice })).status, 200)

        yield* issuer.serve
        yield* eventually(
          call(dexmon.baseUrl, `/api/v1/readings?${range}`, { token: fromRotated }),
          (answer) => answer.status === 200,
          { what: "the new key accepted once the issuer answers again", every: "200 millis", times: 100 }
        )
      }),
    120_000
  )

  it.live("DexMon started while the issuer is down answers 503 for a token, and serves it once the issuer is up", () =>
    Effect.gen(function* () {
      const issuer = yield* makeIssuer
      const key = yield* issuer.newKey("key-1", true)
      yield* issuer.stop
      const dexmon = yield* makeDexMonProcessWith({
        ...authEnv(issuer.jwksUrl),
        AUTH_JWKS_COOLDOWN_SECONDS: "1",
        AUTH_JWKS_TIMEOUT_SECONDS: "1"
      })
      yield* dexmon.start
      const { range } = yield* window
      const alice = yield* mint(key, { sub: "alice", scope: ALL })
      assertKeysUnavailable(
        yield* call(dexmon.baseUrl, `/api/v1/readings?${range}`, { token: alice }),
        "no key set fetched yet"
      )
      yield* issuer.serve
      yield* eventually(
        call(dexmon.baseUrl, `/api/v1/readings?${range}`, { token: alice }),
        (answer) => answer.status === 200,
        { what: "the token accepted once the issuer is up", every: "200 millis", times: 100 }
      )
    })
  )

  it.live(
    "past AUTH_JWKS_CACHE_SECONDS the cached keys keep verifying while refreshes fail, until AUTH_JWKS_MAX_STALE_SECONDS",
    () =>
      Effect.gen(function* () {
        const issuer = yield* makeIssuer
        const key = yield* issuer.newKey("key-1", true)
        const dexmon = yield* makeDexMonProcessWith({
          ...authEnv(issuer.jwksUrl),
          AUTH_JWKS_COOLDOWN_SECONDS: "0",
          AUTH_JWKS_TIMEOUT_SECONDS: "1",
          AUTH_JWKS_CACHE_SECONDS: "1",
          AUTH_JWKS_MAX_STALE_SECONDS: "6"
        })
        yield* dexmon.start
        const { range } = yield* window
        const alice = yield* mint(key, { sub: "alice", scope: ALL })
        assert.strictEqual((yield* call(dexmon.baseUrl, `/api/v1/readings?${range}`, { token: alice })).status, 200)

        yield* issuer.hang
        const asked = issuer.fetches()
        const read = call(dexmon.baseUrl, `/api/v1/readings?${range}`, { token: alice })
        // Once the set is older than the cache age, requests refresh it in the background: the issuer is
        // asked, and the token is still served meanwhile from the stale set.
        const statuses: Array<number> = []
        yield* eventually(
          read.pipe(Effect.tap((answer) => Effect.sync(() => statuses.push(answer.status)))),
          () => issuer.fetches() > asked,
          { what: "a refresh of the stale key set asked of the issuer", every: "200 millis", times: 100 }
        )
        assert.isTrue(
          statuses.every((status) => status === 200),
          statuses.join(",")
        )
        assert.strictEqual((yield* read).status, 200, "served from the stale set while the refresh hangs")
        // Past the stale bound the set is no longer trusted: 503, never 401.
        const beyond: Array<number> = []
        const refused = yield* eventually(
          read.pipe(Effect.tap((answer) => Effect.sync(() => beyond.push(answer.status)))),
          (answer) => answer.status === 503,
          { what: "503 once the key set is older than the stale bound", every: "200 millis", times: 150 }
        )
        assertKeysUnavailable(refused, "past the stale bound")
        assert.isTrue(
          beyond.every((status) => status === 200 || status === 503),
          beyond.join(",")
        )

        yield* issuer.serve
        yield* eventually(read, (answer) => answer.status === 200, {
          what: "served again once the issuer answers",
          every: "200 millis",
          times: 100
        })
      }),
    120_000
  )

  it.live("refuses to start when the stale bound is shorter than the cache age", () =>
    Effect.gen(function* () {
      const issuer = yield* makeIssuer
      const dexmon = yield* makeDexMonProcessWith({})
      const { code, output } = yield* dexmon.runToExit({
        ...authEnv(issuer.jwksUrl),
        AUTH_JWKS_CACHE_SECONDS: "600",
        AUTH_JWKS_MAX_STALE_SECONDS: "60"
      })
      assert.notStrictEqual(code, 0)
      assert.include(output, "AUTH_JWKS_MAX_STALE_SECONDS must be at least AUTH_JWKS_CACHE_SECONDS")
    })
  )

  it.live("a token in the URL gets 401 under bearer tokens too, however the name is written", () =>
    Effect.gen(function* () {
      const issuer = yield* makeIssuer
      const key = yield* issuer.newKey("key-1", true)
      const dexmon = yield* makeDexMonProcessWith(authEnv(issuer.jwksUrl))
      yield* dexmon.start
      const { range } = yield* window
      const alice = yield* mint(key, { sub: "alice", scope: ALL })
      for (const name of ["access_token", "Access_Token", "access%5Ftoken"]) {
        const answer = yield* call(dexmon.baseUrl, `/api/v1/readings?${range}&${name}=${alice}`, { token: alice })
        assert.strictEqual(answer.status, 401, `${name}: ${JSON.stringify(answer.body)}`)
        assert.strictEqual(answer.body._tag, "Unauthorized")
        assert.match(String(answer.body.message), /tokens in the URL are refused/)
      }
      assert.strictEqual((yield* call(dexmon.baseUrl, `/api/v1/readings?${range}`, { token: alice })).status, 200)
    })
  )
})
