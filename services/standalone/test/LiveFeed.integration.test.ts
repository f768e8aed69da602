import type { LiveEvent } from "@dexmon/api"
import { EventId, encodeGlucoseEvent, eventHeaders, GlucoseEvent, SensorId, UserId } from "@dexmon/domain"
import { LiveFeed } from "@dexmon/gateway"
import { EventLog, PostgresEventLog, Topics } from "@dexmon/ports"
import { eventually, layerEmbeddedPostgresTest } from "@dexmon/testing"
import { assert, layer } from "@effect/vitest"
import { Clock, ConfigProvider, Deferred, Effect, Fiber, Layer, Stream } from "effect"

const USER = UserId.make("feed-user")
const BACKLOG = 3
const encoder = new TextEncoder()

/** The live feed on the embedded event log, with a backlog of 3 per stream and no heartbeat to speak of. */
const FeedOnEmbeddedLog = LiveFeed.layer.pipe(
  Layer.provideMerge(PostgresEventLog.layer),
  Layer.provideMerge(Layer.succeed(Topics, Topics.make(2, `feed-${Date.now().toString(36)}.`))),
  Layer.provide(layerEmbeddedPostgresTest),
  Layer.provide(
    ConfigProvider.layer(
      ConfigProvider.fromEnv({ env: { DEXMON_STREAM_BACKLOG: String(BACKLOG), DEXMON_STREAM_HEARTBEAT: "1h" } })
    )
  )
)

const reading = (n: number, at: number) => {
  const event = new GlucoseEvent({
    schema_version: 1,
    event_id: EventId.make(`01900000-0000-7000-8000-${n.toString(16).padStart(12, "0")}`),
    sensor_id: SensorId.make("feed-cgm"),
    user_id: USER,
    timestamp: at + n * 60_000,
    glucose_value: 100 + n,
    source: "SENSOR",
    received_at: at
  })
  return { key: event.sensor_id, value: encoder.encode(encodeGlucoseEvent(event)), headers: eventHeaders(event) }
}

const values = (events: ReadonlyArray<LiveEvent>) =>
  events.flatMap((event) => (event.event === "reading" ? [event.data.glucose_value] : []))

layer(FeedOnEmbeddedLog, { timeout: 120_000, excludeTestServices: true })("the gateway's live feed", (it) => {
  it.effect(
    "a client that stops reading is cut off once its backlog is full, and resumes with its last id without a gap",
    () =>
      Effect.gen(function* () {
        const feed = yield* LiveFeed
        const log = yield* EventLog
        const { names } = yield* Topics
        const slow = yield* feed.open(USER, undefined, { alerts: true })
        const fast = yield* feed.open(USER, undefined, { alerts: true })
        // The slow client takes its first reading and then stops reading until the gate opens.
        const gate = yield* Deferred.make<void>()
        const slowSeen: Array<LiveEvent> = []
        const slowRun = yield* Effect.forkChild(
          Stream.runForEach(slow, (event) =>
            Effect.sync(() => slowSeen.push(event)).pipe(
              Effect.andThen(event.event === "reading" ? Deferred.await(gate) : Effect.void)
            )
          )
        )
        const fastSeen: Array<LiveEvent> = []
        yield* Effect.forkChild(Stream.runForEach(fast, (event) => Effect.sync(() => fastSeen.push(event))))

        // One at a time, each seen by the fast client before the next: a healthy client keeps up, so its
        // backlog never fills; the slow client's queue takes each one too, until it is full.
        const at = yield* Clock.currentTimeMillis
        for (let n = 0; n < 10; n++) {
          yield* log.append(names.events, [reading(n, at)])
          yield* eventually(
            Effect.sync(() => values(fastSeen)),
            (got) => got.length === n + 1
          )
        }
        yield* Deferred.succeed(gate, undefined)
        // Cut off: its stream ends (with a heartbeat an hour away it would otherwise run for good), after what
        // it held and what its backlog kept, in order.
        yield* Fiber.join(slowRun).pipe(Effect.timeout("30 seconds"))
        // What it got is the start of the readings, in order: the one it held, its backlog, and what the stream's
        // own stages had pulled; far from all ten.
        const kept = values(slowSeen)
        assert.deepStrictEqual(
          kept,
          Array.from({ length: kept.length }, (_, n) => 100 + n)
        )
        assert.isAtLeast(kept.length, 1 + BACKLOG)
        assert.isBelow(kept.length, 10)

        // It resumes with the id of the last event it got: the rest, once, in order.
        const lastId = slowSeen.filter((event) => event.event === "reading").at(-1)!.id!
        const resumed: Array<LiveEvent> = []
        const resumedRun = yield* Effect.forkChild(
          Stream.runForEach(yield* feed.open(USER, lastId, { alerts: true }), (event) =>
            Effect.sync(() => resumed.push(event))
          )
        )
        const rest = yield* eventually(
          Effect.sync(() => values(resumed)),
          (got) => got.length >= 10 - kept.length
        )
        assert.deepStrictEqual(
          rest,
          Array.from({ length: 10 - kept.length }, (_, n) => 100 + kept.length + n)
        )
        yield* Fiber.interrupt(resumedRun)
      })
  )
})
