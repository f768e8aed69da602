import { EventId, SensorId, UserId } from "@dexmon/domain"
import { AlertStateStore, AlertStore, EventLog, Topics } from "@dexmon/ports"
import { eventually } from "@dexmon/testing"
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { toProducerRecord } from "./support/AlertDay.ts"
import { notifierOnEmbeddedStoresWith } from "./support/NotifierOnEmbeddedStores.ts"

const t0 = Date.parse("2026-11-24T08:00:00.000Z")
const MINUTE = 60_000
const USER = UserId.make("race-user")
const SENSOR = "raced-sensor"

/**
 * The real PostgreSQL state store, with another notifier racing this one:
 * after each of the first `races` writes that update stored states, the other
 * writer (a zombie that still believes it owns the partition, and decided
 * fewer of its records) writes the states as they were before, late. Counts
 * the zombie's writes.
 */
const racedStateStore = (races: number) => {
  const seen = { raced: 0 }
  const save =
    (real: AlertStateStore["Service"]): AlertStateStore["Service"]["save"] =>
    (rows) =>
      Effect.gen(function* () {
        const before = seen.raced < races ? yield* real.load(rows.map((row) => row.sensor_id)) : new Map()
        yield* real.save(rows)
        if (before.size > 0) {
          seen.raced += 1
          yield* real.save([...before.values()])
        }
      })
  return { seen, save }
}

const race = racedStateStore(3)
const notifierOnEmbeddedStores = notifierOnEmbeddedStoresWith({ prefix: "race", partitions: 2, save: race.save })

/** A live reading `minute` minutes after t0 (logged 30 s after its timestamp), as the receiver appends it. */
const reading = (minute: number, value: number) =>
  toProducerRecord({
    sensor: SensorId.make(SENSOR),
    user: USER,
    timestamp: t0 + minute * MINUTE,
    value,
    source: "SENSOR",
    eventId: EventId.make(`01900000-0000-7000-8000-${(minute + 1).toString(16).padStart(12, "0")}`),
    logTime: t0 + minute * MINUTE + 30_000
  })

layer(notifierOnEmbeddedStores, { timeout: 120_000, excludeTestServices: true })(
  "the notifier against a racing writer of its sensor states",
  (it) => {
    it.effect(
      "a zombie's late write of older states changes nothing: the newest state stays, one episode, nothing dead-lettered",
      () =>
        Effect.gen(function* () {
          const log = yield* EventLog
          const alerts = yield* AlertStore
          const states = yield* AlertStateStore
          const { names } = yield* Topics
          const episodes = alerts
            .list({ user_id: USER, from: t0 - MINUTE, to: t0 + 60 * MINUTE, limit: 10 })
            .pipe(Effect.map((page) => page.items))
          // One batch at a time, each waited for, so every later batch updates a stored state.
          yield* log.append(names.events, [reading(0, 65)])
          yield* eventually(episodes, (items) => items.length === 1, { every: "50 millis", times: 400 })
          for (const [minute, value] of [
            [5, 64],
            [10, 90],
            [15, 95]
          ] as const) {
            yield* log.append(names.events, [reading(minute, value)])
            yield* eventually(episodes, (items) => items[0]?.last_reading_at === t0 + minute * MINUTE, {
              every: "50 millis",
              times: 400
            })
          }
          const [low] = yield* episodes
          assert.deepStrictEqual(
            [low!.alert_type, low!.status, low!.started_at, low!.ended_at, low!.extreme_value],
            ["LOW", "RESOLVED", t0, t0 + 15 * MINUTE, 64]
          )
          assert.strictEqual((yield* episodes).length, 1)
          // The race really happened, every time it was staged (each update: minutes 5, 10 and 15), and after the
          // last zombie write the stored state still covers the last reading's log position.
          yield* eventually(
            Effect.sync(() => race.seen.raced),
            (raced) => raced === 3,
            { every: "50 millis", times: 400 }
          )
          const lastPosition = Math.max(...(yield* log.endOffsets(names.events)).values()) - 1
          const stored = (yield* states.load([SensorId.make(SENSOR)])).get(SensorId.make(SENSOR))
          assert.strictEqual(JSON.parse(stored!.state).position, lastPosition)
          const deadLetters = yield* log.endOffsets(names.alertsDlq)
          assert.strictEqual(
            [...deadLetters.values()].reduce((a, b) => a + b, 0),
            0
          )
        })
    )
  }
)
