import { DexMonClient } from "@dexmon/sdk"
import { type DexMonProcess, makeDexMonProcess, eventually as waitUntil } from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect } from "effect"

const HOUR = 3_600_000

/** Polls a query until its answer satisfies `done`: waits on the data itself, never on a fixed delay. */
const eventually = <A, E, R>(query: Effect.Effect<A, E, R>, done: (a: A) => boolean) =>
  waitUntil(query, done, { every: "50 millis", times: 400 })

const withClient = (dexmon: DexMonProcess, userId: string) =>
  Effect.provide(DexMonClient.layer({ baseUrl: dexmon.baseUrl, userId }))

const readingsOf = (sensor: string, now: number) =>
  Effect.gen(function* () {
    const client = yield* DexMonClient
    return yield* client.readings.list({ query: { from: now - 24 * HOUR, to: now + HOUR, sensor_id: sensor as never } })
  })
const alertsNow = (now: number) =>
  Effect.gen(function* () {
    const client = yield* DexMonClient
    return yield* client.alerts.list({ query: { from: now - 24 * HOUR, to: now + HOUR } })
  })

/**
 * Posts a reading for the same sensor at another timestamp and waits until it
 * is stored. One sensor's events are processed in order, so once the marker is
 * stored, everything posted before it for that sensor has been processed too.
 */
const postMarkerAndWait = (sensor: string, timestamp: number, now: number) =>
  Effect.gen(function* () {
    const client = yield* DexMonClient
    yield* client.ingestion.postSensor({ payload: { sensor_id: sensor as never, timestamp, glucose_value: 100 } })
    yield* eventually(readingsOf(sensor, now), (page) => page.items.some((r) => r.timestamp === timestamp))
  })

describe("DexMon on its embedded default (pnpm start)", () => {
  it.live("a batch sent newest first, as Nightscout's uploaders send, alerts as if it came in time order", () =>
    Effect.gen(function* () {
      const dexmon = yield* makeDexMonProcess
      yield* dexmon.start
      const now = yield* Clock.currentTimeMillis
      yield* Effect.gen(function* () {
        const client = yield* DexMonClient
        const reading = (minutesAgo: number, value: number) => ({
          sensor_id: "cgm-order" as never,
          timestamp: now - minutesAgo * 60_000,
          glucose_value: value
        })
        yield* client.ingestion.postSensor({
          payload: { readings: [reading(0, 240), reading(5, 310), reading(10, 300)] }
        })
        // The 240 is the HIGH's first clear reading: once the episode shows it, the whole batch is decided.
        const alerts = yield* eventually(alertsNow(now), (p) => p.items[0]?.last_value === 240)
        assert.deepStrictEqual(
          alerts.items.map((a) => [a.alert_type, a.status, a.started_at, a.glucose_value, a.extreme_value, a.ended_at]),
          [["HIGH", "ACTIVE", now - 10 * 60_000, 300, 310, null]]
        )
      }).pipe(withClient(dexmon, "user-order"))
    })
  )

  it.live(
    "a LOW sensor reading is stored at version 1 with an etag and opens one LOW episode; posting it again changes nothing",
    () =>
      Effect.gen(function* () {
        const dexmon = yield* makeDexMonProcess
        yield* dexmon.start
        const now = yield* Clock.currentTimeMillis
        const timestamp = now - 60_000
        yield* Effect.gen(function* () {
          const client = yield* DexMonClient
          const accepted = yield* client.ingestion.postSensor({
            payload: { sensor_id: "cgm-1" as never, timestamp, glucose_value: 65 }
          })
          assert.strictEqual(accepted.accepted, 1)
          assert.strictEqual(accepted.event_ids.length, 1)
          const page = yield* eventually(readingsOf("cgm-1", now), (p) => p.items.length === 1)
          const reading = page.items[0]!
          assert.strictEqual(reading.glucose_value, 65)
          assert.strictEqual(reading.source, "SENSOR")
          assert.strictEqual(reading.version, 1)
          // The stored reading's etag (content hash, version 1), then what the representation adds (units, trend).
          assert.match(reading.etag, /^[0-9a-f]{20}-1\.[0-9a-f]{8}$/)
          const alerts = yield* eventually(alertsNow(now), (p) => p.items.length === 1)
          const low = alerts.items[0]!
          assert.deepStrictEqual(
            [low.alert_type, low.status, low.started_at, low.ended_at, low.glucose_value],
            ["LOW", "ACTIVE", timestamp, null, 65]
          )

          yield* client.ingestion.postSensor({ payload: { sensor_id: "cgm-1" as never, timestamp, glucose_value: 65 } })
          const marker = timestamp + 300_000
          yield* postMarkerAndWait("cgm-1", marker, now)
          const after = yield* readingsOf("cgm-1", now)
          assert.deepStrictEqual(
            after.items.find((r) => r.timestamp === timestamp),
            reading
          )
          // The marker is the episode's first clear reading: once the episode shows it, the notifier has
          // decided the repeated post before it too, which neither opened a second episode nor changed this one.
          const episodes = yield* eventually(alertsNow(now), (p) => p.items[0]?.last_reading_at === marker)
          assert.strictEqual(episodes.items.length, 1)
          assert.deepStrictEqual({ ...episodes.items[0]! }, { ...low, last_value: 100, last_reading_at: marker })
        }).pipe(withClient(dexmon, "user-a"))
      }),
    120_000
  )

  it.live(
    "MANUAL 100 then SENSOR 110 ends at SENSOR 110 version 2 with a new etag; a later MANUAL 90 changes nothing",
    () =>
      Effect.gen(function* () {
        const dexmon = yield* makeDexMonProcess
        yield* dexmon.start
        const now = yield* Clock.currentTimeMillis
        const timestamp = now - 120_000
        yield* Effect.gen(function* () {
          const client = yield* DexMonClient
          const key = { sensor_id: "cgm-2" as never, timestamp }
          yield* client.ingestion.postManual({ payload: { ...key, glucose_value: 100 } })
          const first = yield* eventually(readingsOf("cgm-2", now), (p) => p.items.length === 1)
          // ETag and If-None-Match: 304 while unchanged, for the reading and for the page.
          const readingUrl = `${dexmon.baseUrl}/api/v1/readings/cgm-2/${new Date(timestamp).toISOString()}`
          const pageUrl = `${dexmon.baseUrl}/api/v1/readings?from=${new Date(now - 24 * HOUR).toISOString()}&to=${new Date(now + HOUR).toISOString()}`
          const fetchWith = (url: string, etag?: string) =>
            Effect.promise(() =>
              fetch(url, {
                headers: { "x-user-id": "user-b", ...(etag === undefined ? {} : { "if-none-match": etag }) }
              })
            )
          const single = yield* fetchWith(readingUrl)
          assert.strictEqual(single.status, 200)
          assert.strictEqual(single.headers.get("etag"), `"${first.items[0]!.etag}"`)
          assert.strictEqual((yield* fetchWith(readingUrl, single.headers.get("etag")!)).status, 304)
          const page = yield* fetchWith(pageUrl)
          const pageEtag = page.headers.get("etag")!
          assert.strictEqual((yield* fetchWith(pageUrl, pageEtag)).status, 304)
          assert.strictEqual(
            (yield* client.readings.get({ params: { sensor_id: "cgm-2" as never, timestamp }, query: {} })).version,
            1
          )
          yield* client.ingestion.postSensor({ payload: { ...key, glucose_value: 110 } })
          const second = yield* eventually(readingsOf("cgm-2", now), (p) => p.items[0]?.version === 2)
          assert.strictEqual(second.items[0]!.source, "SENSOR")
          assert.strictEqual(second.items[0]!.glucose_value, 110)
          assert.notStrictEqual(second.items[0]!.etag, first.items[0]!.etag)
          assert.strictEqual((yield* fetchWith(pageUrl, pageEtag)).status, 200, "the page changed")
          assert.strictEqual(
            (yield* fetchWith(readingUrl, single.headers.get("etag")!)).status,
            200,
            "the reading changed"
          )

          yield* client.ingestion.postManual({ payload: { ...key, glucose_value: 90 } })
          yield* postMarkerAndWait("cgm-2", timestamp + 300_000, now)
          const third = yield* readingsOf("cgm-2", now)
          assert.deepStrictEqual(
            third.items.find((r) => r.timestamp === timestamp),
            second.items[0]
          )
        }).pipe(withClient(dexmon, "user-b"))
      }),
    120_000
  )

  it.live(
    "killed with SIGKILL right after a 202, then started again: the reading is stored and its HIGH episode opened once",
    () =>
      Effect.gen(function* () {
        const dexmon = yield* makeDexMonProcess
        yield* dexmon.start
        const now = yield* Clock.currentTimeMillis
        const timestamp = now - 30_000
        const post = Effect.gen(function* () {
          const client = yield* DexMonClient
          return yield* client.ingestion.postSensor({
            payload: { sensor_id: "cgm-3" as never, timestamp, glucose_value: 300 }
          })
        })
        const accepted = yield* post.pipe(withClient(dexmon, "user-c"))
        assert.strictEqual(accepted.accepted, 1)
        yield* dexmon.kill9
        yield* dexmon.start
        yield* Effect.gen(function* () {
          const page = yield* eventually(readingsOf("cgm-3", now), (p) => p.items.length === 1)
          assert.strictEqual(page.items[0]!.glucose_value, 300)
          assert.strictEqual(page.items[0]!.version, 1)
          const alerts = yield* eventually(alertsNow(now), (p) => p.items.length === 1)
          assert.deepStrictEqual(
            alerts.items.map((alert) => [alert.alert_type, alert.status, alert.started_at, alert.glucose_value]),
            [["HIGH", "ACTIVE", timestamp, 300]]
          )
        }).pipe(withClient(dexmon, "user-c"))
      }),
    120_000
  )

  it.live(
    "with DEXMON_PROFILE=production a missing connection variable stops start-up instead of falling back",
    () =>
      Effect.gen(function* () {
        const dexmon = yield* makeDexMonProcess
        // An issuer is configured, so what stops start-up can only be a missing store variable.
        const { code, output } = yield* dexmon.runToExit({
          DEXMON_PROFILE: "production",
          SECURITY_DISABLED: "false",
          AUTH_ISSUER: "https://issuer.example/",
          AUTH_AUDIENCE: "dexmon",
          AUTH_JWKS_URL: "https://issuer.example/jwks"
        })
        assert.notStrictEqual(code, 0)
        // Whichever store is resolved first names its variable; none falls back to an embedded store.
        assert.match(
          output,
          /(DATABASE_URL|KAFKA_BROKERS|CASSANDRA_CONTACT_POINTS) is required when DEXMON_PROFILE=production/
        )
        assert.notInclude(output, "embedded PostgreSQL ready")
      }),
    60_000
  )
})
