import { createHash } from "node:crypto"
import { gzipSync } from "node:zlib"
import { DexMonClient } from "@dexmon/sdk"
import { eventually, makeDexMonProcessWith } from "@dexmon/testing"
import { assert, layer } from "@effect/vitest"
import { Clock, Effect } from "effect"
import { apiSecretOf, asUser, readingsOf, SharedDexMon } from "./support/SharedDexMon.ts"

const MINUTE = 60_000
const sha1 = (text: string) => createHash("sha1").update(text).digest("hex")

/** A Nightscout request as an uploader sends it: the headers given, a JSON or gzip body; the raw answer. */
/** A request body, whole or as a stream of small chunks (which fetch sends chunked). */
const bodyOf = (bytes: Uint8Array, options: { readonly chunked?: boolean }) =>
  options.chunked === true
    ? {
        body: new ReadableStream<Uint8Array>({
          start(controller) {
            for (let start = 0; start < bytes.length; start += 64) controller.enqueue(bytes.slice(start, start + 64))
            controller.close()
          }
        }),
        duplex: "half" as const
      }
    : { body: bytes }

const nightscout = (
  method: string,
  path: string,
  options: {
    readonly headers?: Record<string, string>
    readonly body?: unknown
    readonly gzip?: boolean
    /** Sent in chunks without a length (`Transfer-Encoding: chunked`), as OkHttp sends xDrip+'s gzip bodies. */
    readonly chunked?: boolean
  } = {}
) =>
  Effect.gen(function* () {
    const { baseUrl } = yield* SharedDexMon
    return yield* Effect.promise(async () => {
      const json = options.body === undefined ? undefined : JSON.stringify(options.body)
      const response = await fetch(`${baseUrl}${path}`, {
        method,
        headers: {
          ...(json === undefined ? {} : { "content-type": "application/json" }),
          ...(options.gzip === true ? { "content-encoding": "gzip" } : {}),
          ...options.headers
        },
        ...(json === undefined ? {} : bodyOf(options.gzip === true ? gzipSync(json) : Buffer.from(json), options))
      })
      const text = await response.text()
      return {
        status: response.status,
        headers: response.headers,
        body: text === "" ? undefined : (JSON.parse(text) as unknown)
      }
    })
  })

layer(SharedDexMon.layer, { timeout: "120 seconds", excludeTestServices: true })("Nightscout's API on DexMon", (it) => {
  it.effect(
    "entries as xDrip+ posts them (SHA-1 in api-secret, gzip once told, +0100 offsets) are stored as readings and raise one alert per episode, also when posted again",
    () =>
      Effect.gen(function* () {
        const user = "ns-xdrip-user"
        const secret = yield* apiSecretOf(user)
        const headers = { "api-secret": sha1(secret.api_secret!) }
        const now = yield* Clock.currentTimeMillis
        const t0 = Math.floor(now / MINUTE) * MINUTE - 12 * MINUTE
        // xDrip+ writes dateString with Java's Z pattern (+0100) and sends it beside date; the last entry has
        // dateString only, in another zone, so the offset is what places it.
        const plusOneHour = (millis: number) => `${new Date(millis + 60 * MINUTE).toISOString().slice(0, 23)}+0100`
        const entry = (minute: number, sgv: number) => ({
          device: "xDrip-DexcomG6",
          date: t0 + minute * MINUTE,
          dateString: plusOneHour(t0 + minute * MINUTE),
          sgv,
          delta: -5.5,
          direction: "SingleDown",
          type: "sgv",
          filtered: sgv * 1000,
          unfiltered: sgv * 1000,
          rssi: 100,
          noise: 1,
          sysTime: plusOneHour(t0 + minute * MINUTE)
        })
        // The first post is plain: xDrip+ compresses only after a response says Accept-Encoding: gzip.
        const first = yield* nightscout("POST", "/api/v1/entries", { headers, body: [entry(0, 95), entry(5, 66)] })
        assert.strictEqual(first.status, 200, JSON.stringify(first.body))
        assert.strictEqual(first.headers.get("accept-encoding"), "gzip")
        const lastOnly = { device: "xDrip-DexcomG6", sgv: 48, dateString: plusOneHour(t0 + 10 * MINUTE), type: "sgv" }
        const second = yield* nightscout("POST", "/api/v1/entries", {
          headers: { ...headers, "content-type": "application/json; charset=utf-8" },
          body: [lastOnly],
          gzip: true,
          chunked: true
        })
        assert.strictEqual(second.status, 200, JSON.stringify(second.body))

        const stored = yield* eventually(
          readingsOf(user, t0 - MINUTE, t0 + 15 * MINUTE),
          (page) => page.items.length === 3,
          { what: "the three readings stored" }
        )
        assert.deepStrictEqual(
          stored.items.map((reading) => [(reading.timestamp - t0) / MINUTE, reading.glucose_value, reading.source]),
          [
            [0, 95, "SENSOR"],
            [5, 66, "SENSOR"],
            [10, 48, "SENSOR"]
          ]
        )
        assert.match(stored.items[0]!.sensor_id, /^ns-xDrip-DexcomG6-[0-9a-f]{12}$/)
        // SharedDexMon's own trend from the readings, not the uploader's: 95 -> 66 in 5 minutes is DoubleDown.
        assert.strictEqual(stored.items[1]!.trend, "DoubleDown")

        const urgentLows = asUser(
          user,
          Effect.flatMap(DexMonClient, (client) =>
            client.alerts.list({ query: { from: t0 - MINUTE, to: t0 + 60 * MINUTE, alert_type: "URGENT_LOW" } })
          )
        )
        yield* eventually(urgentLows, (page) => page.items.length === 1, { what: "one urgent-low episode" })

        // The same entries again, as an uploader retrying after a lost answer: nothing is stored twice.
        const again = yield* nightscout("POST", "/api/v1/entries.json", {
          headers,
          body: [entry(0, 95), entry(5, 66), lastOnly],
          gzip: true
        })
        assert.strictEqual(again.status, 200)
        const marker = { device: "xDrip-DexcomG6", sgv: 47, date: t0 + 11 * MINUTE }
        yield* nightscout("POST", "/api/v1/entries", { headers, body: marker })
        // The marker posted after the repeat is stored, so the repeat has been processed too.
        const after = yield* eventually(
          readingsOf(user, t0 - MINUTE, t0 + 15 * MINUTE),
          (page) => page.items.length >= 4,
          { what: "the marker stored" }
        )
        assert.deepStrictEqual(
          after.items.map((reading) => [(reading.timestamp - t0) / MINUTE, reading.glucose_value]),
          [
            [0, 95],
            [5, 66],
            [10, 48],
            [11, 47]
          ]
        )
        assert.strictEqual((yield* urgentLows).items.length, 1, "one episode, however often its readings come")
      })
  )

  it.effect(
    "every entry is answered in order with its _id (Loop counts them); calibrations and device error codes are answered, not kept; mbg is a manual reading; 39 and 401 are kept flagged LO and HI",
    () =>
      Effect.gen(function* () {
        const user = "ns-loop-user"
        const secret = yield* apiSecretOf(user)
        const headers = { "api-secret": sha1(secret.api_secret!) }
        // Loop checks its credential first.
        const test = yield* nightscout("GET", "/api/v1/experiments/test", { headers })
        assert.deepStrictEqual([test.status, test.body], [200, { status: "ok" }])
        const now = yield* Clock.currentTimeMillis
        const t0 = Math.floor(now / MINUTE) * MINUTE - 30 * MINUTE
        const uuid = "3F2504E0-4F89-11D3-9A0C-0305E82C3301"
        const body = [
          // As Loop's GlucoseEntry writes one: fractional date, dateString in UTC without a fraction, trend as a
          // number beside direction, trendRate, isCalibration.
          {
            _id: uuid,
            type: "sgv",
            sgv: 140,
            date: t0 + 0.123456,
            dateString: `${new Date(t0).toISOString().slice(0, 19)}Z`,
            device: "loop://iPhone",
            direction: "Flat",
            trend: 4,
            trendRate: 0.1,
            isCalibration: false
          },
          { type: "cal", date: t0, slope: 895.5, intercept: 30_000, scale: 1 },
          { type: "sgv", sgv: 9, date: t0 + 5 * MINUTE, device: "loop://iPhone", direction: "NotComputable" },
          { type: "mbg", mbg: 101, date: t0 + 6 * MINUTE, device: "loop://iPhone" },
          // Both spellings of Nightscout's two odd directions are taken.
          { type: "sgv", sgv: 39, date: t0 + 10 * MINUTE, device: "loop://iPhone", direction: "NOT COMPUTABLE" },
          { type: "sgv", sgv: 401, date: t0 + 15 * MINUTE, device: "loop://iPhone", direction: "RateOutOfRange" },
          { type: "sgv", sgv: 180, date: t0 + 16 * MINUTE, device: "loop://iPhone", direction: "RATE OUT OF RANGE" }
        ]
        const posted = yield* nightscout("POST", "/api/v1/entries", { headers, body })
        assert.strictEqual(posted.status, 200, JSON.stringify(posted.body))
        const echoes = posted.body as ReadonlyArray<Record<string, unknown>>
        assert.strictEqual(echoes.length, body.length)
        assert.strictEqual(echoes[0]!._id, uuid)
        assert.isTrue(echoes.every((echo, index) => typeof echo._id === "string" && echo.date === body[index]!.date))
        assert.deepStrictEqual(
          echoes.map((echo) => (echo.dexmon as { readonly stored: boolean }).stored),
          [true, false, false, true, true, true, true]
        )
        const stored = yield* eventually(
          readingsOf(user, t0 - MINUTE, t0 + 20 * MINUTE),
          (page) => page.items.length === 5,
          { what: "the five readings stored" }
        )
        assert.deepStrictEqual(
          stored.items.map((reading) => [
            reading.timestamp - t0,
            reading.glucose_value,
            reading.source,
            reading.sensor_limit ?? null
          ]),
          [
            [0, 140, "SENSOR", null],
            [6 * MINUTE, 101, "MANUAL", null],
            // Nightscout's LO and HI: kept with their flag, through the pipeline to DexMon's own API.
            [10 * MINUTE, 39, "SENSOR", "LO"],
            [15 * MINUTE, 401, "SENSOR", "HI"],
            [16 * MINUTE, 180, "SENSOR", null]
          ]
        )
      })
  )

  it.effect(
    "a post of any length is taken: 2,500 entries in one gzip body, newest first, are all stored once, and a low among the oldest is one backfilled episode",
    () =>
      Effect.gen(function* () {
        const user = "ns-backfill-user"
        const secret = yield* apiSecretOf(user)
        const now = yield* Clock.currentTimeMillis
        const t0 = Math.floor(now / MINUTE) * MINUTE - 2_600 * MINUTE
        const body = Array.from({ length: 2_500 }, (_, index) => ({
          type: "sgv",
          // A low of four minutes among the oldest, which reach the event log in the last of three batches' worth.
          sgv: index >= 10 && index <= 13 ? 50 : 100 + (index % 50),
          date: t0 + index * MINUTE,
          device: "xDrip-LibreReceiver"
        })).reverse()
        const posted = yield* nightscout("POST", "/api/v1/entries", {
          headers: { "api-secret": sha1(secret.api_secret!) },
          body,
          gzip: true
        })
        assert.strictEqual(posted.status, 200, JSON.stringify(posted.body).slice(0, 500))
        assert.strictEqual((posted.body as ReadonlyArray<unknown>).length, 2_500)
        const count = asUser(
          user,
          Effect.flatMap(DexMonClient, (client) =>
            client.statistics.get({ query: { from: t0, to: t0 + 2_500 * MINUTE } })
          )
        )
        const statistics = yield* eventually(count, (answer) => answer.readings >= 2_500, {
          what: "2,500 readings stored"
        })
        assert.strictEqual(statistics.readings, 2_500)
        // Appended oldest first across batches too: the low, hours older than the newest reading, is judged before
        // them, so it opens its (backfilled) episode.
        const lows = yield* eventually(
          asUser(
            user,
            Effect.flatMap(DexMonClient, (client) =>
              client.alerts.list({ query: { from: t0, to: t0 + 2_500 * MINUTE, alert_type: "URGENT_LOW" } })
            )
          ),
          (page) => page.items.length > 0,
          { what: "the urgent low among the oldest entries" }
        )
        assert.deepStrictEqual(
          lows.items.map((alert) => [alert.status, alert.started_at - t0]),
          [["BACKFILLED", 10 * MINUTE]]
        )
      })
  )

  it.effect(
    "refused with 401: no credential, a wrong one, a read-only token posting or testing, a revoked one; a bad body is a 400 naming the entry and field, and changes nothing",
    () =>
      Effect.gen(function* () {
        const user = "ns-refusals-user"
        const secret = yield* apiSecretOf(user)
        const readable = yield* asUser(
          user,
          Effect.flatMap(DexMonClient, (client) => client.nightscoutCredentials.create({ payload: { kind: "token" } }))
        )
        const now = yield* Clock.currentTimeMillis
        const entry = { type: "sgv", sgv: 120, date: now - 5 * MINUTE, device: "xDrip-DexcomG6" }
        const statusOf = (path: string, headers: Record<string, string>, body?: unknown) =>
          Effect.map(nightscout(body === undefined ? "GET" : "POST", path, { headers, body }), (answer) => {
            assert.strictEqual(answer.headers.get("accept-encoding"), "gzip", "a refusal says it too")
            return [answer.status, (answer.body as { readonly _tag?: string } | undefined)?._tag]
          })
        assert.deepStrictEqual(yield* statusOf("/api/v1/entries", {}, [entry]), [401, "Unauthorized"])
        assert.deepStrictEqual(yield* statusOf("/api/v1/entries", { "api-secret": sha1("not-the-secret") }, [entry]), [
          401,
          "Unauthorized"
        ])
        assert.deepStrictEqual(yield* statusOf(`/api/v1/entries?token=${readable.token}`, {}, [entry]), [
          401,
          "Unauthorized"
        ])
        assert.deepStrictEqual(yield* statusOf(`/api/v1/experiments/test?token=${readable.token}`, {}), [
          401,
          "Unauthorized"
        ])
        // The secret in plain text is not the secret's SHA-1: Nightscout refuses it too.
        assert.deepStrictEqual(yield* statusOf("/api/v1/entries", { "api-secret": secret.api_secret! }, [entry]), [
          401,
          "Unauthorized"
        ])
        // Its SHA-1 in ?secret= and in upper case hex works, as Nightscout's do.
        assert.deepStrictEqual(
          yield* statusOf(`/api/v1/experiments/test?secret=${sha1(secret.api_secret!).toUpperCase()}`, {}),
          [200, undefined]
        )

        const bad = yield* nightscout("POST", "/api/v1/entries", {
          headers: { "api-secret": sha1(secret.api_secret!) },
          body: [entry, { ...entry, sgv: "high" }, { ...entry, date: undefined }]
        })
        assert.strictEqual(bad.status, 400)
        assert.deepStrictEqual(
          (bad.body as { readonly issues: ReadonlyArray<{ readonly path: string }> }).issues.map((issue) => issue.path),
          ["[1].sgv", "[2].date"]
        )
        // Times and values SharedDexMon does not take are answered and not kept, not refused: an uploader resends a
        // refused post, and one odd entry would hold back every reading after it.
        const odd = yield* nightscout("POST", "/api/v1/entries", {
          headers: { "api-secret": sha1(secret.api_secret!) },
          body: [
            { ...entry, date: now + 60 * MINUTE },
            { ...entry, date: now - 100 * 24 * 60 * MINUTE },
            { ...entry, sgv: 650 }
          ]
        })
        assert.strictEqual(odd.status, 200)
        assert.deepStrictEqual(
          (odd.body as ReadonlyArray<{ readonly dexmon: { readonly stored: boolean; readonly reason: string } }>).map(
            (echo) => [echo.dexmon.stored, echo.dexmon.reason]
          ),
          [
            [false, "more than 5 minutes in the future"],
            [false, "older than the hot retention (90 days)"],
            [false, "sgv 650 is above 600 mg/dL, more than any sensor reads (401 means HI)"]
          ]
        )
        const notJson = yield* nightscout("POST", "/api/v1/entries", {
          headers: { "api-secret": sha1(secret.api_secret!), "content-encoding": "gzip" },
          body: [entry]
        })
        assert.deepStrictEqual(
          [notJson.status, (notJson.body as { readonly message: string }).message],
          [400, "invalid request payload: : the body says Content-Encoding: gzip but is not valid gzip"]
        )

        // A later good post is stored alone: none of the refused or odd entries was.
        yield* nightscout("POST", "/api/v1/entries", {
          headers: { "api-secret": sha1(secret.api_secret!) },
          body: { ...entry, sgv: 77, date: now - MINUTE }
        })
        const stored = yield* eventually(
          readingsOf(user, now - 60 * MINUTE, now + 60 * MINUTE),
          (page) => page.items.length > 0,
          { what: "the good post stored" }
        )
        assert.deepStrictEqual(
          stored.items.map((reading) => reading.glucose_value),
          [77]
        )

        // Revoked: the secret authenticates nothing from then on.
        yield* asUser(
          user,
          Effect.flatMap(DexMonClient, (client) =>
            client.nightscoutCredentials.revoke({ params: { credential_id: secret.id } })
          )
        )
        assert.deepStrictEqual(
          yield* statusOf("/api/v1/experiments/test", { "api-secret": sha1(secret.api_secret!) }),
          [401, "Unauthorized"]
        )
      })
  )

  it.effect(
    "a credential in the body, as Nightscout takes it (secret or token, in the object or the first entry), is used and never echoed; a wrong one is 401",
    () =>
      Effect.gen(function* () {
        const user = "ns-body-credential-user"
        const secret = yield* apiSecretOf(user)
        const uploader = yield* asUser(
          user,
          Effect.flatMap(DexMonClient, (client) =>
            client.nightscoutCredentials.create({ payload: { kind: "token", role: "uploader" } })
          )
        )
        const now = yield* Clock.currentTimeMillis
        const t0 = Math.floor(now / MINUTE) * MINUTE - 20 * MINUTE
        const entry = (minute: number, sgv: number) => ({
          type: "sgv",
          sgv,
          date: t0 + minute * MINUTE,
          device: "body-credential-phone"
        })
        const withSecret = yield* nightscout("POST", "/api/v1/entries", {
          body: [{ ...entry(0, 120), secret: sha1(secret.api_secret!) }, entry(5, 125)]
        })
        assert.strictEqual(withSecret.status, 200, JSON.stringify(withSecret.body))
        const withToken = yield* nightscout("POST", "/api/v1/entries", {
          body: { ...entry(10, 130), token: uploader.token }
        })
        assert.strictEqual(withToken.status, 200, JSON.stringify(withToken.body))
        for (const echo of [
          ...(withSecret.body as ReadonlyArray<object>),
          ...(withToken.body as ReadonlyArray<object>)
        ]) {
          assert.isFalse("secret" in echo || "token" in echo, `no credential echoed: ${JSON.stringify(echo)}`)
        }
        const wrong = yield* nightscout("POST", "/api/v1/entries", {
          body: [{ ...entry(15, 135), secret: sha1("not-the-secret") }]
        })
        assert.strictEqual(wrong.status, 401)
        // Only where Nightscout looks: a secret on a later entry is no credential.
        const later = yield* nightscout("POST", "/api/v1/entries", {
          body: [entry(15, 135), { ...entry(16, 136), secret: sha1(secret.api_secret!) }]
        })
        assert.strictEqual(later.status, 401)
        const stored = yield* eventually(
          readingsOf(user, t0 - MINUTE, t0 + 30 * MINUTE),
          (page) => page.items.length === 3,
          { what: "the three readings posted with a credential stored" }
        )
        assert.deepStrictEqual(
          stored.items.map((reading) => [reading.timestamp - t0, reading.glucose_value]),
          [
            [0, 120],
            [5 * MINUTE, 125],
            [10 * MINUTE, 130]
          ]
        )
      })
  )

  it.effect("a credential's user past the rate limit gets 429 with Retry-After, as on DexMon's own API", () =>
    Effect.gen(function* () {
      // Test processes run without the limit; this one has a small one: 1 a second, bursts of 5.
      const limited = yield* makeDexMonProcessWith({
        SECURITY_DISABLED: "true",
        DEXMON_RATE_LIMIT_PER_SECOND: "1",
        DEXMON_RATE_LIMIT_BURST: "5"
      })
      yield* limited.start
      const secret = yield* Effect.flatMap(DexMonClient, (client) =>
        client.nightscoutCredentials.create({ payload: { kind: "api_secret" } })
      ).pipe(Effect.provide(DexMonClient.layer({ baseUrl: limited.baseUrl, userId: "ns-rate-user" })))
      const answers = yield* Effect.forEach(Array.from({ length: 10 }), () =>
        Effect.promise(async () => {
          const response = await fetch(`${limited.baseUrl}/api/v1/experiments/test`, {
            headers: { "api-secret": sha1(secret.api_secret!) }
          })
          return {
            status: response.status,
            retryAfter: response.headers.get("retry-after"),
            body: await response.json()
          }
        })
      )
      const statuses = answers.map((answer) => answer.status)
      // Creating the secret spent one of the five; the rest of the burst passes, then the limit refuses.
      assert.deepStrictEqual(statuses.slice(0, 4), [200, 200, 200, 200], JSON.stringify(statuses))
      const refused = answers.filter((answer) => answer.status === 429)
      assert.isAtLeast(refused.length, 4, JSON.stringify(statuses))
      assert.strictEqual((refused[0]!.body as { readonly _tag: string })._tag, "TooManyRequests")
      assert.isAtLeast(Number(refused[0]!.retryAfter), 1)
    })
  )

  it.effect(
    "a token is exchanged for a JWT at /api/v2/authorization/request, which works as a bearer until its credential is revoked",
    () =>
      Effect.gen(function* () {
        const user = "ns-jwt-user"
        const uploader = yield* asUser(
          user,
          Effect.flatMap(DexMonClient, (client) =>
            client.nightscoutCredentials.create({ payload: { kind: "token", role: "uploader" } })
          )
        )
        const grant = yield* nightscout("GET", `/api/v2/authorization/request/${uploader.token}`)
        assert.strictEqual(grant.status, 200)
        const { token, sub, exp, iat } = grant.body as { token: string; sub: string; exp: number; iat: number }
        assert.strictEqual(sub, "uploader")
        assert.strictEqual(exp - iat, 8 * 3600)
        const bearer = { authorization: `Bearer ${token}` }
        assert.strictEqual((yield* nightscout("GET", "/api/v1/experiments/test", { headers: bearer })).status, 200)
        // The token itself as a bearer works too, as Nightscout takes it.
        const direct = { authorization: `Bearer ${uploader.token}` }
        assert.strictEqual((yield* nightscout("GET", "/api/v1/experiments/test", { headers: direct })).status, 200)
        // A JWT whose signature was tampered with is refused.
        const tampered = { authorization: `Bearer ${token.slice(0, -2)}${token.endsWith("AA") ? "BB" : "AA"}` }
        assert.strictEqual((yield* nightscout("GET", "/api/v1/experiments/test", { headers: tampered })).status, 401)
        assert.strictEqual((yield* nightscout("GET", "/api/v2/authorization/request/readable-nope")).status, 401)

        yield* asUser(
          user,
          Effect.flatMap(DexMonClient, (client) =>
            client.nightscoutCredentials.revoke({ params: { credential_id: uploader.id } })
          )
        )
        assert.strictEqual((yield* nightscout("GET", "/api/v1/experiments/test", { headers: bearer })).status, 401)
      })
  )

  it.effect("two users posting from devices of the same name write to two sensors, each their own", () =>
    Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      const date = Math.floor(now / MINUTE) * MINUTE - 3 * MINUTE
      const sensors = yield* Effect.forEach(["ns-twin-a", "ns-twin-b"], (user, index) =>
        Effect.gen(function* () {
          const secret = yield* apiSecretOf(user)
          const posted = yield* nightscout("POST", "/api/v1/entries", {
            headers: { "api-secret": sha1(secret.api_secret!) },
            body: [{ type: "sgv", sgv: 110 + index, date, device: "xDrip-DexcomG6" }]
          })
          assert.strictEqual(posted.status, 200, JSON.stringify(posted.body))
          const stored = yield* eventually(readingsOf(user, date, date + MINUTE), (page) => page.items.length === 1, {
            what: `${user}'s reading stored`
          })
          assert.strictEqual(stored.items[0]!.glucose_value, 110 + index)
          return stored.items[0]!.sensor_id
        })
      )
      assert.notStrictEqual(sensors[0], sensors[1])
    })
  )
  it.effect(
    "followers read what SharedDexMon's own API and an uploader wrote, newest first with SharedDexMon's trend, as Nightguard and Loop ask for it; another user's token sees none of it",
    () =>
      Effect.gen(function* () {
        const user = "ns-follower-user"
        const now = yield* Clock.currentTimeMillis
        const t0 = Math.floor(now / MINUTE) * MINUTE - 20 * MINUTE
        const at = (minute: number) => t0 + minute * MINUTE
        // Written through SharedDexMon's own API: the same readings whichever API wrote them.
        yield* asUser(
          user,
          Effect.flatMap(DexMonClient, (client) =>
            client.ingestion.postSensor({
              payload: {
                readings: [
                  { sensor_id: "G7-follow" as never, timestamp: at(0), glucose_value: 100 },
                  { sensor_id: "G7-follow" as never, timestamp: at(5), glucose_value: 110 },
                  { sensor_id: "G7-follow" as never, timestamp: at(10), glucose_value: 125 }
                ]
              }
            })
          )
        )
        const secret = yield* apiSecretOf(user)
        const uploader = { "api-secret": sha1(secret.api_secret!) }
        yield* nightscout("POST", "/api/v1/entries", {
          headers: uploader,
          body: [{ type: "mbg", mbg: 118, date: at(12), device: "Contour" }]
        })
        const readable = yield* asUser(
          user,
          Effect.flatMap(DexMonClient, (client) => client.nightscoutCredentials.create({ payload: { kind: "token" } }))
        )
        yield* eventually(readingsOf(user, at(0), at(15)), (page) => page.items.length === 4, {
          what: "the four readings stored"
        })

        // Nightguard: a range of dates as Swift writes Doubles, count=1440, the token in the query.
        const nightguard = yield* nightscout(
          "GET",
          `/api/v1/entries.json?find%5Bdate%5D%5B$gt%5D=${at(0) - 1}.0&find%5Bdate%5D%5B$lte%5D=${at(15)}.0&count=1440&token=${readable.token}`
        )
        assert.strictEqual(nightguard.status, 200)
        const entries = nightguard.body as ReadonlyArray<Record<string, unknown>>
        assert.deepStrictEqual(
          entries.map((entry) => [entry.type, entry.sgv ?? entry.mbg, entry.date, entry.direction, entry.delta]),
          [
            ["mbg", 118, at(12), undefined, undefined],
            ["sgv", 125, at(10), "DoubleUp", 15],
            ["sgv", 110, at(5), "SingleUp", 10],
            ["sgv", 100, at(0), "NOT COMPUTABLE", null]
          ]
        )
        assert.deepStrictEqual(
          entries.map((entry) => entry.device),
          ["Contour", "G7-follow", "G7-follow", "G7-follow"]
        )
        // The newest sgv alone; count limits; the type narrows.
        const current = yield* nightscout("GET", `/api/v1/entries/current.json?token=${readable.token}`)
        assert.deepStrictEqual(
          (current.body as ReadonlyArray<Record<string, unknown>>).map((entry) => [entry.sgv, entry.trend]),
          [[125, 1]]
        )
        const two = yield* nightscout("GET", `/api/v1/entries/sgv.json?count=2&token=${readable.token}`)
        assert.deepStrictEqual(
          (two.body as ReadonlyArray<Record<string, unknown>>).map((entry) => entry.sgv),
          [125, 110]
        )
        // Loop: dateString bounds in UTC, with the api-secret header.
        const utc = (millis: number) => `${new Date(millis).toISOString().slice(0, 19)}Z`
        const loop = yield* nightscout(
          "GET",
          `/api/v1/entries?find[dateString][$gte]=${utc(at(4))}&find[dateString][$lte]=${utc(at(11))}`,
          { headers: uploader }
        )
        assert.deepStrictEqual(
          (loop.body as ReadonlyArray<Record<string, unknown>>).map((entry) => [typeof entry._id, entry.date]),
          [
            ["string", at(10)],
            ["string", at(5)]
          ]
        )
        const csv = yield* Effect.flatMap(SharedDexMon, ({ baseUrl }) =>
          Effect.promise(() =>
            fetch(`${baseUrl}/api/v1/entries.csv?count=2&token=${readable.token}`).then((response) => response.text())
          )
        )
        assert.strictEqual(
          csv,
          `"${new Date(at(12)).toISOString()}",${at(12)},118,"","Contour"\n"${new Date(at(10)).toISOString()}",${at(10)},125,"DoubleUp","G7-follow"\n`
        )

        // If-Modified-Since: 304 until a reading changes (HTTP dates count whole seconds).
        const lastModified = nightguard.headers.get("last-modified")
        assert.isString(lastModified)
        const since = { "if-modified-since": lastModified! }
        assert.strictEqual(
          (yield* nightscout("GET", `/api/v1/entries.json?token=${readable.token}`, { headers: since })).status,
          304
        )
        // The ETag names exactly what is served: If-None-Match with it is a 304 as well, until it changes.
        const etag = nightguard.headers.get("etag")
        assert.isString(etag)
        const sameQuery = `/api/v1/entries.json?find%5Bdate%5D%5B$gt%5D=${at(0) - 1}.0&find%5Bdate%5D%5B$lte%5D=${at(15)}.0&count=1440&token=${readable.token}`
        assert.strictEqual((yield* nightscout("GET", sameQuery, { headers: { "if-none-match": etag! } })).status, 304)
        // A change is told apart to the second only: the next reading is posted once the server's own clock
        // (its Date header) is past the second of Last-Modified.
        yield* eventually(
          nightscout("GET", `/api/v1/status.json?token=${readable.token}`),
          (answer) => Date.parse(answer.headers.get("date") ?? "") > Date.parse(lastModified!),
          { what: "the server's clock past the second of Last-Modified", every: "50 millis" }
        )
        yield* nightscout("POST", "/api/v1/entries", {
          headers: uploader,
          body: [{ type: "sgv", sgv: 131, date: at(15), device: "xDrip-DexcomG6" }]
        })
        yield* eventually(readingsOf(user, at(0), at(16)), (page) => page.items.length === 5, {
          what: "the new reading stored"
        })
        const changed = yield* nightscout("GET", `/api/v1/entries.json?token=${readable.token}`, { headers: since })
        assert.strictEqual(changed.status, 200)
        assert.strictEqual((yield* nightscout("GET", sameQuery, { headers: { "if-none-match": etag! } })).status, 200)
        assert.strictEqual((changed.body as ReadonlyArray<Record<string, unknown>>)[0]!.sgv, 131)

        // Another user's credential reads only that user's entries: none here.
        const stranger = yield* asUser(
          "ns-stranger",
          Effect.flatMap(DexMonClient, (client) => client.nightscoutCredentials.create({ payload: { kind: "token" } }))
        )
        const theirs = yield* nightscout("GET", `/api/v1/entries.json?count=100&token=${stranger.token}`)
        assert.deepStrictEqual([theirs.status, theirs.body], [200, []])
      })
  )

  it.effect(
    "status.json names the user's thresholds and follows a change of the alert settings; a bad filter is a 400 naming it; device statuses are kept per sensor, the latest of each",
    () =>
      Effect.gen(function* () {
        const user = "ns-status-user"
        const secret = yield* apiSecretOf(user)
        const query = `?secret=${sha1(secret.api_secret!)}`
        const settings = Effect.map(
          nightscout("GET", `/api/v1/status.json${query}`),
          (answer) =>
            (answer.body as { readonly settings: { readonly thresholds: unknown; readonly units: string } }).settings
        )
        const before = yield* settings
        assert.strictEqual(before.units, "mg/dl")
        assert.deepStrictEqual(before.thresholds, { bgHigh: 250, bgTargetTop: 250, bgTargetBottom: 70, bgLow: 55 })
        yield* asUser(
          user,
          Effect.gen(function* () {
            const client = yield* DexMonClient
            const current = yield* client.alertSettings.get()
            yield* client.alertSettings.put({
              payload: {
                ...current.body,
                low: { ...current.body.low, threshold: 80 },
                high: { ...current.body.high, threshold: 180 }
              },
              headers: { "if-match": current.headers.etag }
            })
          })
        )
        assert.deepStrictEqual((yield* settings).thresholds, {
          bgHigh: 250,
          bgTargetTop: 180,
          bgTargetBottom: 80,
          bgLow: 55
        })
        const bad = yield* nightscout("GET", `/api/v1/entries.json${query}&find%5Bdate%5D%5B$gte%5D=yesterday`)
        assert.strictEqual(bad.status, 400)
        assert.deepStrictEqual(
          (bad.body as { readonly issues: ReadonlyArray<{ readonly path: string }> }).issues.map((issue) => issue.path),
          ["find[date][$gte]"]
        )
        assert.strictEqual((yield* nightscout("GET", `/api/v1/entries/cal.json${query}`)).status, 404)
        // Device statuses as xDrip+ (battery in `uploader`) and an older uploader (`uploaderBattery`) post them:
        // each kept as the latest of its device's sensor, the same sensor as its entries'.
        const uploader = { "api-secret": sha1(secret.api_secret!) }
        const now = yield* Clock.currentTimeMillis
        const iso = (millis: number) => new Date(millis).toISOString()
        const posted = yield* nightscout("POST", "/api/v1/devicestatus", {
          headers: uploader,
          body: [
            { device: "xDrip-DexcomG6", created_at: iso(now - 120_000), uploader: { battery: 87, name: "phone" } },
            { device: "share2", created_at: iso(now - 60_000), uploaderBattery: 40 }
          ]
        })
        assert.strictEqual(posted.status, 200, JSON.stringify(posted.body))
        assert.strictEqual((posted.body as ReadonlyArray<Record<string, unknown>>)[0]!.device, "xDrip-DexcomG6")
        // An older status of the xDrip+ phone, arriving late, changes nothing; a newer one replaces it.
        yield* nightscout("POST", "/api/v1/devicestatus", {
          headers: uploader,
          body: { device: "xDrip-DexcomG6", created_at: iso(now - 180_000), uploader: { battery: 95 } }
        })
        yield* nightscout("POST", "/api/v1/devicestatus", {
          headers: uploader,
          body: { device: "xDrip-DexcomG6", created_at: iso(now - 30_000), uploader: { battery: 86 } }
        })
        const kept = yield* nightscout("GET", `/api/v1/devicestatus.json${query}`)
        assert.deepStrictEqual(
          (kept.body as ReadonlyArray<Record<string, unknown>>).map((status) => [
            status.device,
            status.created_at,
            status.uploaderBattery
          ]),
          [
            ["xDrip-DexcomG6", iso(now - 30_000), 86],
            ["share2", iso(now - 60_000), 40]
          ]
        )
        const malformed = yield* nightscout("POST", "/api/v1/devicestatus", {
          headers: uploader,
          body: [{ device: "xDrip-DexcomG6" }, "battery 50"]
        })
        assert.deepStrictEqual(
          (malformed.body as { readonly issues: ReadonlyArray<{ readonly path: string }> }).issues.map(
            (issue) => issue.path
          ),
          ["[1]"]
        )
      })
  )
})
