import { type ConsumerRecord, EventLog, firstAppendPosition, PostgresEventLog, Topics } from "@dexmon/ports"
import { layerEmbeddedPostgresTest } from "@dexmon/testing"
import { assert, layer } from "@effect/vitest"
import { Clock, Effect, Layer, Stream } from "effect"
import { DeadLetters } from "../src/index.ts"

const topics = Topics.make(2)
const { names } = topics
const encoder = new TextEncoder()

const deadLettersLayer = DeadLetters.layer.pipe(
  Layer.provideMerge(PostgresEventLog.layer),
  Layer.provide(Layer.succeed(Topics, topics)),
  Layer.provide(layerEmbeddedPostgresTest)
)

/** A dead letter as the processor writes it (`deadLetterRecord` in @dexmon/streams), of an event logged at `loggedAt`. */
const deadLetter = (key: string, loggedAt: number | undefined) => ({
  key,
  value: encoder.encode(JSON.stringify({ sensor_id: key })),
  headers: {
    origin: "sensor",
    // An event replayed once already and dead-lettered again carries its first position; older letters do not.
    ...(loggedAt === undefined ? {} : { "dexmon-first-append": "2/5" }),
    "dlq-error-tag": "ReadingStoreError",
    "dlq-error-message": "the store refused the reading",
    "dlq-source-topic": names.events,
    "dlq-source-partition": "0",
    "dlq-source-offset": "7",
    ...(loggedAt === undefined ? {} : { "dlq-source-timestamp": String(loggedAt) }),
    "dlq-attempts": "8",
    "dlq-first-failure-at": "2026-11-24T00:00:00.000Z"
  }
})

/** Reads the events topic from the start until `count` records are seen, without committing. */
const readEvents = (count: number) =>
  Effect.gen(function* () {
    const log = yield* EventLog
    const seen: Array<ConsumerRecord> = []
    yield* log.consume({ topic: names.events, groupId: `events-reader-${crypto.randomUUID()}` }).pipe(
      Stream.map((batch) => {
        seen.push(...batch.records)
        return seen.length >= count
      }),
      Stream.takeUntil((done) => done),
      Stream.runDrain
    )
    return seen
  })

layer(deadLettersLayer, { timeout: 120_000, excludeTestServices: true })("DeadLetters on the embedded log", (it) => {
  it.effect("replay appends the original key, bytes and headers at the log time the event first had", () =>
    Effect.gen(function* () {
      const log = yield* EventLog
      const deadLetters = yield* DeadLetters
      const firstLoggedAt = (yield* Clock.currentTimeMillis) - 3 * 60 * 60 * 1_000 - 17
      yield* log.append(names.eventsDlq, [
        deadLetter("sensor-kept", firstLoggedAt),
        deadLetter("sensor-legacy", undefined)
      ])

      const before = yield* Clock.currentTimeMillis
      assert.strictEqual(yield* deadLetters.replay("events", "all"), 2)
      const after = yield* Clock.currentTimeMillis

      const replayed = yield* readEvents(2)
      const byKey = new Map(replayed.map((record) => [record.key, record]))
      const kept = byKey.get("sensor-kept")!
      assert.strictEqual(kept.timestamp, firstLoggedAt)
      assert.deepStrictEqual(kept.headers, { origin: "sensor", "dexmon-first-append": "2/5" })
      assert.deepStrictEqual(firstAppendPosition(kept), { partition: 2, offset: 5 })
      assert.strictEqual(new TextDecoder().decode(kept.value), JSON.stringify({ sensor_id: "sensor-kept" }))
      // A dead letter from before the DLQ kept the log time goes back at the time of the replay.
      const legacy = byKey.get("sensor-legacy")!
      assert.isTrue(before <= legacy.timestamp && legacy.timestamp <= after, `${legacy.timestamp}`)
      // Its first position is where it failed.
      assert.deepStrictEqual(legacy.headers, { origin: "sensor", "dexmon-first-append": "0/7" })
    })
  )
})
