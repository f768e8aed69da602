import { randomBytes } from "node:crypto"
import { decodeAlertNotificationBytes, EventId, SensorId, UserId } from "@dexmon/domain"
import { layerSpanProcessor, parentFromHeaders } from "@dexmon/observability"
import { EventLog, Topics } from "@dexmon/ports"
import { eventually, makeSpanCollector } from "@dexmon/testing"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer, Stream } from "effect"
import { toProducerRecord } from "./support/AlertDay.ts"
import { notifierStoresOnEmbedded, notifierWithDefaultRules } from "./support/NotifierOnEmbeddedStores.ts"

const collector = makeSpanCollector()
const stores = notifierStoresOnEmbedded({ prefix: "notification-traces", partitions: 1, save: (real) => real.save })
// The notifier exports its spans here, as it does to a trace store: each record it consumes gets a span.
const notifier = notifierWithDefaultRules.pipe(
  Layer.provide(layerSpanProcessor("dexmon-notification-traces", collector.processor))
)

/** A W3C `traceparent` of a trace of its own, as a receiver's POST puts on its reading. */
const newTraceparent = () => `00-${randomBytes(16).toString("hex")}-${randomBytes(8).toString("hex")}-01`

layer(notifier.pipe(Layer.provideMerge(stores)), { timeout: 120_000, excludeTestServices: true })(
  "the trace a notification carries",
  (it) => {
    it.effect(
      "each notification continues the trace of the reading that decided it (its record's span in the notifier), not the batch's; a reading with no trace gets its record span's",
      () =>
        Effect.gen(function* () {
          const log = yield* EventLog
          const { names } = yield* Topics
          const run = Date.now().toString(36)
          const user = UserId.make(`traces-${run}`)
          const traces = { a: newTraceparent(), b: newTraceparent(), untraced: undefined }
          const now = Date.now()
          // Three urgent lows of three sensors from three requests, appended together: one batch of three traces.
          const records = Object.entries(traces).map(([name, traceparent]) => {
            const record = toProducerRecord({
              sensor: SensorId.make(`${run}-${name}`),
              user,
              timestamp: now - 60_000,
              value: 50,
              source: "SENSOR",
              eventId: EventId.make(`01900000-0000-7000-8000-${randomBytes(6).toString("hex")}`),
              logTime: now
            })
            return traceparent === undefined ? record : { ...record, headers: { ...record.headers, traceparent } }
          })
          yield* log.append(names.events, records)

          const notifications = yield* eventually(
            Effect.gen(function* () {
              const end = [...(yield* log.endOffsets(names.alerts)).values()].reduce((a, b) => a + b, 0)
              if (end < 3) return []
              const appended = yield* log
                .follow(names.alerts, new Map([[0, 0]]))
                .pipe(Stream.take(end), Stream.runCollect)
              return yield* Effect.forEach(appended, (record) =>
                Effect.map(decodeAlertNotificationBytes(record.value), (notification) => ({
                  sensor: notification.sensor_id,
                  type: `${notification.alert.alert_type} ${notification.type}`,
                  traceparent: record.headers.traceparent
                }))
              )
            }),
            (notifications) => notifications.length === 3,
            { what: "the three urgent lows' notifications" }
          )
          // The notifier's span for each record, as exported (they end with the batch's commit).
          const process = `${names.events} process`
          const recordSpans = yield* eventually(
            Effect.sync(() => collector.spans.filter((span) => span.name === process)),
            (spans) => spans.length === 3,
            { what: "the notifier's three record spans" }
          )
          const [batch] = collector.spans.filter((span) => span.name === `${names.events} batch`)
          assert.strictEqual(batch?.attributes["messaging.batch.message_count"], 3, "one batch of the three")
          assert.isUndefined(batch!.parentSpanContext, "a batch of three traces is no one's child")

          for (const [name, traceparent] of Object.entries(traces)) {
            const notification = notifications.find((n) => n.sensor === `${run}-${name}`)
            assert.strictEqual(notification?.type, "URGENT_LOW alert")
            // The span it names is the notifier's for the reading's record, which continues the reading's trace.
            const continued = parentFromHeaders({ traceparent: notification!.traceparent! })
            const [span] = recordSpans.filter((span) => span.spanContext().spanId === continued?.spanId)
            assert.isDefined(span, `${name}'s notification names its record's span, not the batch's`)
            assert.strictEqual(span!.attributes["messaging.kafka.message.key"], `${run}-${name}`)
            assert.notStrictEqual(continued!.traceId, batch!.spanContext().traceId)
            const reading = traceparent === undefined ? undefined : parentFromHeaders({ traceparent })
            assert.deepStrictEqual(
              span!.parentSpanContext === undefined
                ? undefined
                : [span!.parentSpanContext.traceId, span!.parentSpanContext.spanId],
              reading === undefined ? undefined : [reading.traceId, reading.spanId],
              "the record span is the reading's producer's child, or a root for a reading that came with no trace"
            )
          }
        })
    )
  }
)
