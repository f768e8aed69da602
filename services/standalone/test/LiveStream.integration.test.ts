import type { LiveEvent } from "@dexmon/api"
import { SensorId } from "@dexmon/domain"
import { DexMonClient } from "@dexmon/sdk"
import { ALL, AUDIENCE, ISSUER, makeDexMonProcessWith, makeIssuer, mint } from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Fiber, Queue, Stream } from "effect"

const USER = "live-user"
const OTHER = "live-other"

/** What the app does with the stream: reads it into a queue the test takes from, until the fiber is interrupted. */
const listen = (events: Stream.Stream<LiveEvent, unknown>) =>
  Effect.gen(function* () {
    const queue = yield* Queue.unbounded<LiveEvent>()
    const fiber = yield* Effect.forkScoped(Stream.runForEach(events, (event) => Queue.offer(queue, event)))
    /** The next events that are not heartbeats, `count` of them; dies naming what did arrive if they do not within a minute. */
    const next = (count: number) => {
      const taken: Array<LiveEvent> = []
      return Effect.gen(function* () {
        while (taken.length < count) {
          const event = yield* Queue.take(queue)
          if (event.event !== "heartbeat") taken.push(event)
        }
        return taken
      }).pipe(
        Effect.timeoutOrElse({
          duration: "60 seconds",
          orElse: () =>
            Effect.die(new Error(`${count} events awaited for 60 s; ${taken.length} came: ${taken.map(describeEvent)}`))
        })
      )
    }
    /** Everything up to the next heartbeat: what arrived with nothing else pending. */
    const untilHeartbeat = Effect.gen(function* () {
      const taken: Array<LiveEvent> = []
      for (;;) {
        const event = yield* Queue.take(queue)
        if (event.event === "heartbeat") return taken
        taken.push(event)
      }
    }).pipe(Effect.timeout("60 seconds"))
    return { queue, next, untilHeartbeat, close: Fiber.interrupt(fiber) }
  })

const describeEvent = (event: LiveEvent) =>
  event.event === "reading"
    ? `reading ${event.data.sensor_id} ${event.data.glucose_value}`
    : event.event === "alert"
      ? `alert ${event.data.sensor_id} ${event.data.alert.alert_type} ${event.data.type}`
      : "heartbeat"

describe("the live stream on pnpm start", () => {
  it.live(
    "a posted 50 arrives, then its URGENT_LOW; a reconnect with Last-Event-ID replays what was missed, in order per sensor, once, and only the caller's",
    () =>
      Effect.gen(function* () {
        const dexmon = yield* makeDexMonProcessWith({ SECURITY_DISABLED: "true", DEXMON_STREAM_HEARTBEAT: "1s" })
        yield* dexmon.start
        const as = (user: string) => DexMonClient.layer({ baseUrl: dexmon.baseUrl, userId: user })
        const post = (user: string, sensor: string, value: number) =>
          Effect.gen(function* () {
            const client = yield* DexMonClient
            const now = yield* Clock.currentTimeMillis
            yield* client.ingestion.postSensor({
              payload: { sensor_id: SensorId.make(sensor), timestamp: now, glucose_value: value }
            })
          }).pipe(Effect.provide(as(user)))
        const open = (lastEventId?: string) =>
          Effect.gen(function* () {
            const client = yield* DexMonClient
            return yield* client.live.stream({
              headers: lastEventId === undefined ? {} : { "last-event-id": lastEventId }
            })
          }).pipe(Effect.provide(as(USER)))

        // Connected first; a heartbeat shows the stream is up before anything is posted.
        const first = yield* listen(yield* open())
        assert.deepStrictEqual(yield* first.untilHeartbeat, [])
        yield* post(USER, "live-a", 50)
        yield* post(OTHER, "live-x", 50)
        const arrived = yield* first.next(2)
        assert.deepStrictEqual(arrived.map(describeEvent), ["reading live-a 50", "alert live-a URGENT_LOW alert"])
        const resumeFrom = arrived[1]!.id!
        yield* first.close

        // Missed while away: two readings of one sensor, one of another, and another user's.
        yield* post(USER, "live-a", 52)
        yield* post(USER, "live-a", 54)
        yield* post(USER, "live-b", 120)
        yield* post(OTHER, "live-x", 53)
        const second = yield* listen(yield* open(resumeFrom))
        const missed = yield* second.next(3)
        const bySensor = (sensor: string) => missed.map(describeEvent).filter((text) => text.includes(sensor))
        assert.deepStrictEqual(bySensor("live-a"), ["reading live-a 52", "reading live-a 54"])
        assert.deepStrictEqual(bySensor("live-b"), ["reading live-b 120"])
        // Nothing more: no repeat of what the first connection saw, nothing of the other user's.
        assert.deepStrictEqual(yield* second.untilHeartbeat, [])
        // Each id resumes after its own event.
        const third = yield* listen(yield* open(missed[0]!.id!))
        assert.deepStrictEqual(
          (yield* third.next(2)).map(describeEvent).sort(),
          missed.slice(1).map(describeEvent).sort()
        )
        yield* second.close
        yield* third.close
      }),
    180_000
  )

  it.live(
    "every event carries the cursor just after it, in a burst too, and a heartbeat's resumes a stream that saw nothing yet",
    () =>
      Effect.gen(function* () {
        const dexmon = yield* makeDexMonProcessWith({ SECURITY_DISABLED: "true", DEXMON_STREAM_HEARTBEAT: "1s" })
        yield* dexmon.start
        const app = DexMonClient.layer({ baseUrl: dexmon.baseUrl, userId: USER })
        const open = (lastEventId?: string) =>
          Effect.gen(function* () {
            const client = yield* DexMonClient
            return yield* client.live.stream({
              headers: lastEventId === undefined ? {} : { "last-event-id": lastEventId }
            })
          }).pipe(Effect.provide(app))
        const postBatch = (sensor: string, values: ReadonlyArray<number>) =>
          Effect.gen(function* () {
            const client = yield* DexMonClient
            const now = yield* Clock.currentTimeMillis
            yield* client.ingestion.postSensor({
              payload: {
                readings: values.map((value, i) => ({
                  sensor_id: SensorId.make(sensor),
                  timestamp: now - (values.length - i) * 60_000,
                  glucose_value: value
                }))
              }
            })
          }).pipe(Effect.provide(app))

        // Connected, nothing posted yet: the first heartbeat's id is a place to resume from.
        const quiet = yield* listen(yield* open())
        const firstBeat = yield* Queue.take(quiet.queue)
        assert.strictEqual(firstBeat.event, "heartbeat")
        yield* quiet.close
        yield* postBatch("burst-a", [120, 121, 122, 123])
        const resumed = yield* listen(yield* open(firstBeat.id!))
        const all = yield* resumed.next(4)
        assert.deepStrictEqual(all.map(describeEvent), [
          "reading burst-a 120",
          "reading burst-a 121",
          "reading burst-a 122",
          "reading burst-a 123"
        ])
        yield* resumed.close

        // A burst arriving live: resuming from each event's id gives exactly the events after it.
        const live = yield* listen(yield* open(all[3]!.id!))
        yield* postBatch("burst-b", [130, 131, 132, 133, 134, 135])
        const burst = yield* live.next(6)
        yield* live.close
        for (const [i, event] of burst.entries()) {
          const after = yield* listen(yield* open(event.id!))
          const rest = yield* after.untilHeartbeat
          assert.deepStrictEqual(rest.map(describeEvent), burst.slice(i + 1).map(describeEvent), `after ${i}`)
          yield* after.close
        }
      }),
    180_000
  )

  it.live("with OAuth2 tokens: alert events only for a token that may read alerts; no token, no stream", () =>
    Effect.gen(function* () {
      const issuer = yield* makeIssuer
      const key = yield* issuer.newKey("live-key", true)
      const dexmon = yield* makeDexMonProcessWith({
        AUTH_ISSUER: ISSUER,
        AUTH_AUDIENCE: AUDIENCE,
        AUTH_JWKS_URL: issuer.jwksUrl,
        DEXMON_STREAM_HEARTBEAT: "1s"
      })
      yield* dexmon.start
      const everything = yield* mint(key, { sub: USER, scope: ALL })
      const readingsOnly = yield* mint(key, { sub: USER, scope: "glucose:read" })
      const streamWith = (token: string) =>
        Effect.gen(function* () {
          const client = yield* DexMonClient
          return yield* client.live.stream({ headers: {} })
        }).pipe(Effect.provide(DexMonClient.layer({ baseUrl: dexmon.baseUrl, token })))
      const full = yield* listen(yield* streamWith(everything))
      const limited = yield* listen(yield* streamWith(readingsOnly))
      yield* full.untilHeartbeat
      yield* limited.untilHeartbeat
      yield* Effect.gen(function* () {
        const client = yield* DexMonClient
        const now = yield* Clock.currentTimeMillis
        yield* client.ingestion.postSensor({
          payload: { sensor_id: SensorId.make("scoped-a"), timestamp: now, glucose_value: 50 }
        })
      }).pipe(Effect.provide(DexMonClient.layer({ baseUrl: dexmon.baseUrl, token: everything })))
      assert.deepStrictEqual((yield* full.next(2)).map(describeEvent), [
        "reading scoped-a 50",
        "alert scoped-a URGENT_LOW alert"
      ])
      // The alert reached the full stream: had the limited one been sent it, it would be queued by now.
      assert.deepStrictEqual((yield* limited.next(1)).map(describeEvent), ["reading scoped-a 50"])
      assert.deepStrictEqual(yield* limited.untilHeartbeat, [])
      const anonymous = yield* Effect.promise(() => fetch(`${dexmon.baseUrl}/api/v1/stream`))
      assert.strictEqual(anonymous.status, 401)
      yield* full.close
      yield* limited.close
    })
  )

  it.live("on the wire: text/event-stream with id, event and JSON data; a bad Last-Event-ID is 400", () =>
    Effect.gen(function* () {
      const dexmon = yield* makeDexMonProcessWith({ SECURITY_DISABLED: "true", DEXMON_STREAM_HEARTBEAT: "1s" })
      yield* dexmon.start
      const bad = yield* Effect.promise(() =>
        fetch(`${dexmon.baseUrl}/api/v1/stream`, { headers: { "x-user-id": USER, "last-event-id": "not-a-cursor" } })
      )
      assert.strictEqual(bad.status, 400)
      assert.strictEqual(((yield* Effect.promise(() => bad.json())) as { _tag: string })._tag, "InvalidCursor")
      const controller = new AbortController()
      const response = yield* Effect.promise(() =>
        fetch(`${dexmon.baseUrl}/api/v1/stream`, { headers: { "x-user-id": USER }, signal: controller.signal })
      )
      assert.strictEqual(response.status, 200)
      assert.match(response.headers.get("content-type") ?? "", /^text\/event-stream/)
      const reader = response.body!.getReader()
      const now = yield* Clock.currentTimeMillis
      yield* Effect.gen(function* () {
        const client = yield* DexMonClient
        yield* client.ingestion.postSensor({
          payload: { sensor_id: SensorId.make("wire-a"), timestamp: now, glucose_value: 120 }
        })
      }).pipe(Effect.provide(DexMonClient.layer({ baseUrl: dexmon.baseUrl, userId: USER })))
      let text = ""
      // Reads the wire until the reading's event is on it (or the stream ends); a minute at most.
      yield* Effect.gen(function* () {
        while (!text.includes("event: reading")) {
          const chunk = yield* Effect.promise(() => reader.read())
          if (chunk.done) break
          text += new TextDecoder().decode(chunk.value)
        }
      }).pipe(
        Effect.timeoutOrElse({
          duration: "60 seconds",
          orElse: () => Effect.die(new Error(`no "event: reading" on the stream within 60 s; it sent:\n${text}`))
        })
      )
      controller.abort()
      const block = text.split("\n\n").find((part) => part.includes("event: reading"))!
      assert.match(block, /^id: \S+$/m)
      const data = JSON.parse(
        block
          .split("\n")
          .find((line) => line.startsWith("data: "))!
          .slice(6)
      ) as {
        sensor_id: string
        glucose_value: number
      }
      assert.deepStrictEqual([data.sensor_id, data.glucose_value], ["wire-a", 120])
    })
  )
})
