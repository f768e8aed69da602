import { AlertRules } from "@dexmon/alerting"
import {
  AlertActionEvent,
  alertActionHeaders,
  decodeAlertNotification,
  EventId,
  EventIds,
  encodeAlertActionEvent,
  encodeGlucoseEvent,
  eventHeaders,
  GlucoseEvent,
  HotRetention,
  SensorId,
  UserId
} from "@dexmon/domain"
import { NotifierLive } from "@dexmon/notifier"
import {
  AlertStore,
  type ConsumerRecord,
  EventLog,
  KafkaEventLog,
  PostgresAlertSettingsStore,
  PostgresAlertStateStore,
  PostgresAlertStore,
  PostgresEventLog,
  PostgresSensorOwnership,
  ReadingStore,
  SqlReadingStore,
  Topics
} from "@dexmon/ports"
import { ProcessorLive } from "@dexmon/processor"
import { Ingestion } from "@dexmon/receiver"
import { eventually, layerEmbeddedPostgresTest, requiredServer, skewedClock } from "@dexmon/testing"
import { assert, layer } from "@effect/vitest"
import { Clock, ConfigProvider, Effect, Layer, Stream } from "effect"
import type { SqlClient } from "effect/sql"

/** The processor and the notifier in this process, on the given event log and embedded stores, in topics of their own. */
const pipelineOn = (eventLog: Layer.Layer<EventLog, unknown, Topics | SqlClient.SqlClient>) => {
  const topics = Layer.succeed(Topics, Topics.make(4, `pipeline-${Date.now().toString(36)}.`))
  const stores = Layer.mergeAll(
    eventLog,
    SqlReadingStore.layer,
    PostgresAlertStore.layer,
    PostgresAlertStateStore.layer,
    PostgresAlertSettingsStore.layer
  ).pipe(Layer.provideMerge(topics), Layer.provideMerge(layerEmbeddedPostgresTest))
  // What a receiver needs beside the stores: a test runs receivers of its own in this process.
  const receiverNeeds = Layer.mergeAll(HotRetention.layerConfig, PostgresSensorOwnership.layer).pipe(
    Layer.provideMerge(stores)
  )
  return Layer.mergeAll(ProcessorLive, NotifierLive).pipe(
    Layer.provide(AlertRules.layer),
    Layer.provideMerge(receiverNeeds)
  )
}

/** A receiver of its own (its own event-id generator, as on a machine of its own), on the test's stores. */
const startReceiver = Effect.gen(function* () {
  return yield* Ingestion
}).pipe(Effect.provide(Ingestion.layer.pipe(Layer.provide(EventIds.layer))))

const t0 = Date.parse("2026-11-24T08:00:00.000Z")
const MINUTE = 60_000
const encoder = new TextEncoder()
/**
 * A reading `offsetMinutes` after t0, appended with a log time 30 s after its
 * own timestamp: live for the alert engine whatever today's date, so the
 * episode it opens is `ACTIVE`, never `BACKFILLED`.
 */
const eventRecord = (sensor: string, offsetMinutes: number, value: number, n: number) => {
  const event = new GlucoseEvent({
    schema_version: 1,
    event_id: EventId.make(`01900000-0000-7000-8000-${n.toString(16).padStart(12, "0")}`),
    sensor_id: SensorId.make(sensor),
    user_id: UserId.make("pipeline-user"),
    timestamp: t0 + offsetMinutes * MINUTE,
    glucose_value: value,
    source: "SENSOR",
    received_at: t0
  })
  return {
    key: sensor,
    value: encoder.encode(encodeGlucoseEvent(event)),
    headers: eventHeaders(event),
    timestamp: event.timestamp + 30_000
  }
}

/** Polls until the answer is there; fails loudly with the last answer if it never comes. */
const waitFor = <A, E, R>(query: Effect.Effect<A, E, R>, done: (a: A) => boolean) =>
  eventually(query, done, { every: "50 millis", times: 400 })

/** The owner of `sensor` stops its session (a sensor change), as an action on the events topic. */
const stopRecord = (sensor: string, atMinutes: number, n: number) => {
  const event = new AlertActionEvent({
    schema: "alert-action",
    schema_version: 1,
    action_id: EventId.make(`01900000-0000-7000-8000-${n.toString(16).padStart(12, "0")}`),
    sensor_id: SensorId.make(sensor),
    user_id: UserId.make("pipeline-user"),
    action: { type: "stop" },
    requested_at: t0 + atMinutes * MINUTE
  })
  return {
    key: sensor,
    value: encoder.encode(encodeAlertActionEvent(event)),
    headers: alertActionHeaders(event),
    timestamp: t0 + atMinutes * MINUTE
  }
}

/** Every record of a topic up to its end offsets, read from the beginning by a fresh group. */
const readTopicToEnd = (topic: string) =>
  Effect.gen(function* () {
    const log = yield* EventLog
    const ends = yield* log.endOffsets(topic)
    const total = [...ends.values()].reduce((a, b) => a + b, 0)
    if (total === 0) return []
    const seen: Array<ConsumerRecord> = []
    yield* log.consume({ topic, groupId: `probe-end-${topic}-${Date.now().toString(36)}` }).pipe(
      Stream.map((batch) => {
        seen.push(...batch.records)
        return seen.length >= total
      }),
      Stream.takeUntil((done) => done),
      Stream.runDrain
    )
    return seen
  })

/** Reads a topic from the beginning as a fresh group until `count` records for `key` have arrived. */
const readTopic = (topic: string, key: string, count: number) =>
  Effect.gen(function* () {
    const log = yield* EventLog
    const seen: Array<ConsumerRecord> = []
    yield* log.consume({ topic, groupId: `probe-${topic}-${key}` }).pipe(
      Stream.map((batch) => {
        seen.push(...batch.records.filter((r) => r.key === key))
        return seen.length >= count
      }),
      Stream.takeUntil((done) => done),
      Stream.runDrain
    )
    return seen
  })

const pipelineContract = (name: string, eventLog: Layer.Layer<EventLog, unknown, Topics | SqlClient.SqlClient>) =>
  layer(pipelineOn(eventLog), { timeout: 120_000, excludeTestServices: true })(
    `processor and notifier on ${name}`,
    (it) => {
      it.effect(
        "an owner's stop travels with the readings: the processor passes over it, the notifier ends the open episode silently",
        () =>
          Effect.gen(function* () {
            const log = yield* EventLog
            const { names } = yield* Topics
            const readings = yield* ReadingStore
            const alerts = yield* AlertStore
            const sensor = "stopped-sensor"
            yield* log.append(names.events, [
              eventRecord(sensor, 5, 52, 11),
              stopRecord(sensor, 7, 12),
              eventRecord(sensor, 10, 50, 13)
            ])
            const query = { user_id: UserId.make("pipeline-user"), from: t0, to: t0 + 3_600_000, limit: 100 }
            const stored = yield* waitFor(
              readings.list({ ...query, sensor_id: SensorId.make(sensor) }),
              (p) => p.items.length === 2
            )
            assert.deepStrictEqual(
              stored.items.map((r) => r.glucose_value),
              [52, 50]
            )
            // The urgent low of 52 ended at the stop; the 50 after it, the new sensor's, opened a new one.
            const episodes = yield* waitFor(
              alerts.list(query).pipe(Effect.map((page) => page.items.filter((a) => a.sensor_id === sensor))),
              (items) => items.length === 2
            )
            assert.deepStrictEqual(
              episodes.map((a) => [a.alert_type, a.status, a.started_at, a.ended_at]),
              [
                ["URGENT_LOW", "ACTIVE", t0 + 10 * MINUTE, null],
                ["URGENT_LOW", "RESOLVED", t0 + 5 * MINUTE, t0 + 7 * MINUTE]
              ]
            )
            // Each episode was told once, on glucose.alerts under the decision's key; the silent end told nobody.
            const notifications = yield* readTopic(names.alerts, sensor, 2)
            const decoded = yield* Effect.forEach(notifications, (record) =>
              decodeAlertNotification(new TextDecoder().decode(record.value))
            )
            assert.deepStrictEqual(
              decoded.map((n) => [n.type, n.sequence, n.notification_id, n.alert.started_at, n.alert.status]),
              episodes.toReversed().map((a) => ["alert", 1, `${a.alert_id}/alert`, a.started_at, "ACTIVE"])
            )
            assert.deepStrictEqual(
              notifications.map((r) => r.headers["dexmon-notification-id"]),
              decoded.map((n) => n.notification_id)
            )
            for (const dlq of [names.eventsDlq, names.alertsDlq]) {
              const letters = yield* readTopicToEnd(dlq)
              assert.deepStrictEqual(
                letters.filter((r) => r.key === sensor),
                [],
                dlq
              )
            }
          })
      )

      it.effect(
        "two receivers whose clocks are 3 s apart: of two values for one reading, the later posted stands",
        () =>
          Effect.gen(function* () {
            const ahead = yield* startReceiver
            const onTime = yield* startReceiver
            const readings = yield* ReadingStore
            const { names } = yield* Topics
            const user = UserId.make("pipeline-skew-user")
            const sensor = SensorId.make(`skewed-${Date.now().toString(36)}`)
            const timestamp = (yield* Clock.currentTimeMillis) - 10 * MINUTE
            const post = (receiver: Ingestion["Service"], value: number, clock: Clock.Clock) =>
              receiver
                .accept(user, "SENSOR", [{ sensor_id: sensor, timestamp, glucose_value: value }], (i) => `/${i}/`)
                .pipe(Effect.provideService(Clock.Clock, clock))
            // The first value goes through a receiver whose clock runs 3 s ahead, the correction through
            // one on time: the correction's event id is the smaller, yet it was accepted later.
            const first = yield* post(ahead, 100, skewedClock(3_000))
            const second = yield* post(onTime, 120, skewedClock(0))
            assert.isTrue(second.event_ids[0]! < first.event_ids[0]!, "the later event carries the smaller id")
            const query = { user_id: user, from: timestamp, to: timestamp + 1, sensor_id: sensor, limit: 10 }
            // Both events are applied once the second is: stored as version 2 means both went through.
            const stored = yield* waitFor(readings.list(query), (page) => page.items[0]?.version === 2)
            assert.deepStrictEqual(
              stored.items.map((r) => [r.glucose_value, r.version]),
              [[120, 2]]
            )
            const history = yield* readings.history(sensor, timestamp)
            assert.deepStrictEqual(
              history.map((r) => r.glucose_value),
              [100]
            )
            assert.deepStrictEqual(
              (yield* readTopicToEnd(names.eventsDlq)).filter((r) => r.key === sensor),
              []
            )
          })
      )

      it.effect(
        "a poison message goes to both DLQs with its original bytes and the error headers; the events behind it are processed",
        () =>
          Effect.gen(function* () {
            const log = yield* EventLog
            const { names } = yield* Topics
            const readings = yield* ReadingStore
            const alerts = yield* AlertStore
            const sensor = "poisoned-sensor"
            const poison = {
              key: sensor,
              value: Uint8Array.from([0xff, 0x7b, 0x6e, 0x6f]),
              headers: { "x-origin": "a broken client" }
            }
            const futureVersion = {
              ...eventRecord(sensor, 0, 100, 1),
              value: encoder.encode(JSON.stringify({ schema_version: 2, something: "else" }))
            }
            yield* log.append(names.events, [
              poison,
              futureVersion,
              eventRecord(sensor, 5, 55, 2),
              eventRecord(sensor, 10, 120, 3)
            ])

            const query = {
              user_id: UserId.make("pipeline-user"),
              from: t0 - 3_600_000,
              to: t0 + 3_600_000,
              limit: 100
            }
            const stored = yield* waitFor(
              readings.list({ ...query, sensor_id: SensorId.make(sensor) }),
              (page) => page.items.length === 2
            )
            assert.deepStrictEqual(
              stored.items.map((r) => r.glucose_value),
              [55, 120]
            )
            // 55 opens an urgent low (URGENT_LOW alone: it supersedes LOW); 120 is its first clear reading, so the
            // episode stays open. The episode showing that reading proves the notifier got past the poison too.
            // Only this sensor's episodes: the other test of this suite writes the same user's.
            const raised = yield* waitFor(
              alerts
                .list(query)
                .pipe(Effect.map((page) => ({ items: page.items.filter((alert) => alert.sensor_id === sensor) }))),
              (page) => page.items[0]?.last_reading_at === t0 + 10 * MINUTE
            )
            assert.deepStrictEqual(
              raised.items.map((alert) => [
                alert.alert_type,
                alert.status,
                alert.started_at,
                alert.ended_at,
                alert.glucose_value,
                alert.last_value
              ]),
              [["URGENT_LOW", "ACTIVE", t0 + 5 * MINUTE, null, 55, 120]]
            )

            for (const dlq of [names.eventsDlq, names.alertsDlq]) {
              const letters = yield* readTopic(dlq, sensor, 2)
              assert.strictEqual(letters.length, 2, dlq)
              const [first, second] = letters
              assert.deepStrictEqual([...first!.value], [...poison.value])
              assert.strictEqual(first!.headers["x-origin"], "a broken client")
              assert.strictEqual(first!.headers["dlq-error-tag"], "SchemaError")
              assert.strictEqual(first!.headers["dlq-source-topic"], names.events)
              assert.strictEqual(first!.headers["dlq-attempts"], "1")
              assert.isDefined(first!.headers["dlq-source-offset"])
              assert.isDefined(first!.headers["dlq-first-failure-at"])
              assert.strictEqual(
                second!.headers["dlq-source-offset"],
                String(Number(first!.headers["dlq-source-offset"]) + 1)
              )
              assert.deepStrictEqual(second!.value, futureVersion.value)
            }
          })
      )
    }
  )

pipelineContract("the embedded event log", PostgresEventLog.layer)
pipelineContract(
  `Kafka at ${requiredServer("KAFKA_BROKERS")}`,
  KafkaEventLog.layer.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv())))
)
