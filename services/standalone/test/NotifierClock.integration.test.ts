import {
  AlertClockEvent,
  alertClockHeaders,
  decodeAlertNotificationBytes,
  EventId,
  encodeAlertClockEvent,
  SensorId,
  UserId
} from "@dexmon/domain"
import { parentFromHeaders } from "@dexmon/observability"
import { AlertStateStore, AlertStore, EventLog, Topics } from "@dexmon/ports"
import { eventually } from "@dexmon/testing"
import { assert, layer } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Stream } from "effect"
import { toProducerRecord } from "./support/AlertDay.ts"
import { notifierStoresOnEmbedded, notifierWithDefaultRules } from "./support/NotifierOnEmbeddedStores.ts"

const USER = UserId.make("clock-user")
const SENSOR = SensorId.make("clock-sensor")
const MINUTE = 60_000
const NOTIFIER_GROUP = "dexmon-notifier"

const stores = notifierStoresOnEmbedded({ prefix: "clock", partitions: 1, save: (real) => real.save })
const notifier = notifierWithDefaultRules.pipe(
  Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord({ ...process.env, DEXMON_ALERT_TICK_EVERY: "1s" })))
)

const sum = (offsets: ReadonlyMap<number, number>) => [...offsets.values()].reduce((a, b) => a + b, 0)
const encoder = new TextEncoder()
const decoder = new TextDecoder()

layer(notifier.pipe(Layer.provideMerge(stores)), { timeout: 120_000, excludeTestServices: true })(
  "the notifier's clock in the event log",
  (it) => {
    it.effect(
      "a silent sensor's tick is a record of its partition, decided at its position; a second tick of the same moment (a zombie's clock) tells nothing again",
      () =>
        Effect.gen(function* () {
          const log = yield* EventLog
          const alerts = yield* AlertStore
          const states = yield* AlertStateStore
          const { names } = yield* Topics
          const caughtUp = Effect.gen(function* () {
            const end = sum(yield* log.endOffsets(names.events))
            yield* eventually(
              Effect.map(log.committedOffsets(NOTIFIER_GROUP, names.events), sum),
              (committed) => committed === end,
              { every: "50 millis", times: 600 }
            )
          })
          const notificationTypes = Effect.gen(function* () {
            const end = sum(yield* log.endOffsets(names.alerts))
            if (end === 0) return []
            const records = yield* log.follow(names.alerts, new Map([[0, 0]])).pipe(Stream.take(end), Stream.runCollect)
            return yield* Effect.forEach(records, (record) =>
              Effect.map(decodeAlertNotificationBytes(record.value), (n) => `${n.alert.alert_type} ${n.type}`)
            )
          })

          // A live reading half an hour ago, then silence: NO_DATA is due at the first tick.
          const readAt = Date.now() - 30 * MINUTE
          yield* log.append(names.events, [
            toProducerRecord({
              sensor: SENSOR,
              user: USER,
              timestamp: readAt,
              value: 110,
              source: "SENSOR",
              eventId: EventId.make("01900000-0000-7000-8000-0000000000c1"),
              logTime: readAt + 3_000
            })
          ])
          yield* eventually(notificationTypes, (types) => types.length === 1, { every: "100 millis", times: 300 })
          yield* caughtUp
          assert.deepStrictEqual(yield* notificationTypes, ["NO_DATA alert"])
          // A tick's record carries no trace, and this notifier exports no spans (so makes none per record): the
          // notification the clock decided continues its batch's trace instead.
          const [notified] = yield* log.follow(names.alerts, new Map([[0, 0]])).pipe(Stream.take(1), Stream.runCollect)
          assert.isDefined(parentFromHeaders(notified!.headers), "the NO_DATA notification carries the batch's trace")

          // The tick that opened it is on the events topic with the sensor's key, and the state covers its offset.
          const events = yield* log
            .follow(names.events, new Map([[0, 0]]))
            .pipe(Stream.take(sum(yield* log.endOffsets(names.events))), Stream.runCollect)
          const ticks = events.filter((record) => record.headers["dexmon-schema"] === "alert-clock")
          assert.isAtLeast(ticks.length, 1)
          assert.deepStrictEqual(
            ticks.map((record) => [record.key, JSON.parse(decoder.decode(record.value)).sensor_id]),
            ticks.map(() => [SENSOR, SENSOR])
          )
          const positionOf = Effect.map(
            states.load([SENSOR]),
            (loaded) => JSON.parse(loaded.get(SENSOR)!.state).position as number
          )
          assert.include(
            ticks.map((record) => record.offset),
            yield* positionOf
          )

          // Another notifier's clock (one that still believes it owns the partition) ticks the same moment.
          const zombieTick = new AlertClockEvent({
            schema: "alert-clock",
            schema_version: 1,
            sensor_id: SENSOR,
            tick_at: Date.now()
          })
          const [appended] = yield* log.append(names.events, [
            {
              key: SENSOR,
              value: encoder.encode(encodeAlertClockEvent(zombieTick)),
              headers: alertClockHeaders(zombieTick)
            }
          ])
          yield* caughtUp
          assert.strictEqual(yield* positionOf, appended!.offset, "the state covers the second tick too")
          assert.deepStrictEqual(yield* notificationTypes, ["NO_DATA alert"], "and it told nothing again")
          const episodes = yield* alerts.list({ user_id: USER, from: readAt, to: Date.now() + MINUTE, limit: 10 })
          assert.deepStrictEqual(
            episodes.items.map((alert) => [alert.alert_type, alert.status]),
            [["NO_DATA", "ACTIVE"]]
          )
        })
    )
  }
)
