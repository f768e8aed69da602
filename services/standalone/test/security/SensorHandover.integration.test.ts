import type { LiveEvent } from "@dexmon/api"
import { DexMonClient } from "@dexmon/sdk"
import { ALL, AUDIENCE, eventually, ISSUER, makeDexMonProcessWith, makeIssuer, mint } from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Queue, Stream } from "effect"

interface Answer {
  readonly status: number
  readonly text: string
  readonly body: Record<string, unknown>
}

const call = (
  baseUrl: string,
  path: string,
  init: { readonly token: string; readonly body?: unknown; readonly method?: "GET" | "POST" | "DELETE" }
) =>
  Effect.promise(async (): Promise<Answer> => {
    const response = await fetch(`${baseUrl}${path}`, {
      method: init.method ?? (init.body === undefined ? "GET" : "POST"),
      headers: { "content-type": "application/json", authorization: `Bearer ${init.token}` },
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) })
    })
    const text = await response.text()
    return { status: response.status, text, body: text === "" ? {} : JSON.parse(text) }
  })

type AlertRow = Record<string, unknown> & { readonly alert_id: string }

const SENSOR = "handover-cgm"

describe("a released sensor's alerts follow its new owner (issue 16)", () => {
  it.live(
    "Bob's LOW ends at his release; Alice's low readings on the sensor raise her own LOW, and nothing of hers reaches Bob",
    () =>
      Effect.gen(function* () {
        const issuer = yield* makeIssuer
        const key = yield* issuer.newKey("key-1", true)
        const dexmon = yield* makeDexMonProcessWith({
          AUTH_ISSUER: ISSUER,
          AUTH_AUDIENCE: AUDIENCE,
          AUTH_JWKS_URL: issuer.jwksUrl,
          DEXMON_STREAM_HEARTBEAT: "1s"
        })
        yield* dexmon.start
        const bob = yield* mint(key, { sub: "bob", scope: ALL })
        const alice = yield* mint(key, { sub: "alice", scope: ALL })
        const now = yield* Clock.currentTimeMillis
        const range = `from=${new Date(now - 3_600_000).toISOString()}&to=${new Date(now + 3_600_000).toISOString()}`
        const post = (token: string, sensor: string, secondsAgo: number, value: number) =>
          call(dexmon.baseUrl, "/api/v1/glucose/sensor", {
            token,
            body: {
              sensor_id: sensor,
              timestamp: new Date(now - secondsAgo * 1000).toISOString(),
              glucose_value: value
            }
          }).pipe(Effect.map((answer) => assert.strictEqual(answer.status, 202, answer.text)))
        const alertsOf = (token: string) =>
          call(dexmon.baseUrl, `/api/v1/alerts?${range}`, { token }).pipe(
            Effect.map((answer) => answer.body.items as ReadonlyArray<AlertRow>)
          )
        const awaitAlerts = (token: string, what: string, done: (alerts: ReadonlyArray<AlertRow>) => boolean) =>
          eventually(alertsOf(token), done, { what, every: "100 millis", times: 600 })

        // Bob's low reading raises his LOW.
        yield* post(bob, SENSOR, 60, 62)
        const [bobLow] = yield* awaitAlerts(bob, "Bob's LOW", (alerts) => alerts.length === 1)
        assert.deepStrictEqual(
          [bobLow?.user_id, bobLow?.sensor_id, bobLow?.alert_type, bobLow?.status],
          ["bob", SENSOR, "LOW", "ACTIVE"]
        )

        // He releases the sensor: his LOW ends there, through the log, with nobody posting the sensor again;
        // no all clear (it would be false), marked why it ended.
        const released = yield* call(dexmon.baseUrl, `/api/v1/sensors/${SENSOR}/owner`, {
          token: bob,
          method: "DELETE"
        })
        assert.deepStrictEqual([released.status, released.text], [204, ""])
        const [bobEnded] = yield* awaitAlerts(bob, "Bob's LOW ended by the release", (alerts) =>
          alerts.some((alert) => alert.status !== "ACTIVE")
        )
        assert.deepStrictEqual(
          [bobEnded?.alert_id, bobEnded?.status, bobEnded?.silenced_by, bobEnded?.notification_count],
          [bobLow?.alert_id, "RESOLVED", "SENSOR_RELEASED", 1]
        )

        // Bob's live stream from here on, up once a heartbeat came.
        const bobStream = yield* Effect.gen(function* () {
          const client = yield* DexMonClient
          return yield* client.live.stream({ headers: {} })
        }).pipe(Effect.provide(DexMonClient.layer({ baseUrl: dexmon.baseUrl, token: bob })))
        const bobEvents = yield* Queue.unbounded<LiveEvent>()
        yield* Effect.forkScoped(Stream.runForEach(bobStream, (event) => Queue.offer(bobEvents, event)))
        const heartbeat = yield* Queue.take(bobEvents).pipe(Effect.timeout("60 seconds"))
        assert.strictEqual(heartbeat.event, "heartbeat")

        // Alice claims the sensor with her low readings (later than Bob's): her own LOW, under her own user.
        yield* post(alice, SENSOR, 40, 60)
        yield* post(alice, SENSOR, 20, 58)
        const aliceAlerts = yield* awaitAlerts(alice, "Alice's LOW", (alerts) => alerts.length > 0)
        assert.deepStrictEqual(
          aliceAlerts.map((alert) => [alert.user_id, alert.sensor_id, alert.alert_type, alert.status]),
          [["alice", SENSOR, "LOW", "ACTIVE"]]
        )
        assert.notStrictEqual(aliceAlerts[0]?.alert_id, bobLow?.alert_id)

        // Bob's alerts gained nothing from Alice's readings: his one LOW, as his release ended it.
        assert.deepStrictEqual(yield* alertsOf(bob), [bobEnded!])
        const bobActive = yield* call(dexmon.baseUrl, "/api/v1/alerts/active", { token: bob })
        assert.deepStrictEqual(bobActive.body.items, [])

        // Bob's stream: a low reading of another sensor of his is a marker; everything before its alert is his
        // marker's, nothing of Alice's sensor.
        yield* post(bob, "bob-marker", 10, 60)
        const seen: Array<LiveEvent> = []
        yield* Effect.gen(function* () {
          for (;;) {
            const event = yield* Queue.take(bobEvents)
            if (event.event === "heartbeat") continue
            seen.push(event)
            if (event.event === "alert" && event.data.sensor_id === "bob-marker") return
          }
        }).pipe(
          Effect.timeoutOrElse({
            duration: "60 seconds",
            orElse: () => Effect.die(new Error(`the marker's alert never reached Bob's stream; came: ${seen.length}`))
          })
        )
        assert.deepStrictEqual(
          seen.map((event) => (event.event === "heartbeat" ? "heartbeat" : event.data.sensor_id)),
          seen.map(() => "bob-marker")
        )
      }),
    180_000
  )
})
