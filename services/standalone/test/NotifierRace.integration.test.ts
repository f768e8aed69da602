import { EventId, SensorId, UserId } from "@dexmon/domain"
import { type AlertStateStore, AlertStore, EventLog, Topics } from "@dexmon/ports"
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
 * before each of the first `races` writes that update a state, the other
 * writer (a zombie that still believes it owns the partition) writes the same
 * sensors first, with the states it read, so this notifier's conditional write
 * finds a newer revision. Counts the conflicts the store really reported.
 */
const racedStateStore = (races: number) => {
  const seen = { raced: 0, conflicts: 0 }
  const save =
    (real: AlertStateStore["Service"]): AlertStateStore["Service"]["save"] =>
    (writes) =>
      Effect.gen(function* () {
        if (seen.raced < races && writes.some((write) => write.expected_revision > 0)) {
          seen.raced += 1
          const current = yield* real.load(writes.map((write) => write.row.sensor_id))
          yield* real.save([...current.values()].map(({ revision, ...row }) => ({ row, expected_revision: revision })))
        }
        return yield* real
          .save(writes)
          .pipe(Effect.tapErrorTag("AlertStateConflict", () => Effect.sync(() => (seen.conflicts += 1))))
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
      "a conditional write that finds a newer revision is read again and decided again: one episode, nothing dead-lettered",
      () =>
        Effect.gen(function* () {
          const log = yield* EventLog
          const alerts = yield* AlertStore
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
          // The race really happened, every time it was staged.
          assert.strictEqual(race.seen.raced, 3)
          assert.isAtLeast(race.seen.conflicts, 3)
          const deadLetters = yield* log.endOffsets(names.alertsDlq)
          assert.strictEqual(
            [...deadLetters.values()].reduce((a, b) => a + b, 0),
            0
          )
        })
    )
  }
)
