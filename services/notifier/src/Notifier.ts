import {
  Alert,
  AlertThresholds,
  classifyGlucose,
  decodeGlucoseEventBytes,
  deriveAlertId,
  type GlucoseEvent
} from "@dexmon/domain"
import { Metrics } from "@dexmon/observability"
import { AlertStore, EventLog, Topics } from "@dexmon/ports"
import { consumerPipeline, superviseConsumer } from "@dexmon/streams"
import { Config, Effect, Layer } from "effect"

export const NotifierConfig = Config.all({
  groupId: Config.String("DEXMON_NOTIFIER_GROUP").pipe(Config.withDefault("dexmon-notifier")),
  maxBatchSize: Config.Int("DEXMON_NOTIFIER_BATCH_SIZE").pipe(Config.withDefault(500)),
  retries: Config.Int("DEXMON_WRITE_RETRIES").pipe(Config.withDefault(5))
})

/** The alert an event raises, if any; its id is derived, so a replayed event yields the same alert. */
export const alertFor =
  (thresholds: AlertThresholds["Service"]) =>
  (event: GlucoseEvent): Alert | undefined => {
    const type = classifyGlucose(event.glucose_value, thresholds)
    return type === undefined
      ? undefined
      : new Alert({
          alert_id: deriveAlertId(event.sensor_id, event.timestamp, type),
          user_id: event.user_id,
          sensor_id: event.sensor_id,
          timestamp: event.timestamp,
          glucose_value: event.glucose_value,
          alert_type: type,
          status: "SENT"
        })
  }

/**
 * The notifier: reads `glucose.events` as its own consumer group, raises LOW
 * and HIGH alerts by the configured thresholds, stores them idempotently by
 * alert id, sends what cannot be stored to `glucose.events.alerts.dlq`, and
 * commits a batch only after every alert in it is durable.
 */
export const NotifierLive = Layer.effectDiscard(
  Effect.gen(function* () {
    const eventLog = yield* EventLog
    const store = yield* AlertStore
    const { names } = yield* Topics
    const thresholds = yield* AlertThresholds
    const config = yield* NotifierConfig
    const pipeline = consumerPipeline({
      eventLog,
      topic: names.events,
      groupId: config.groupId,
      maxBatchSize: config.maxBatchSize,
      decode: decodeGlucoseEventBytes,
      toWrite: alertFor(thresholds),
      writeKey: (alert) => alert.alert_id,
      write: (alerts) =>
        store.save(alerts).pipe(
          Metrics.timeStoreWrite("alerts"),
          Effect.tap(() =>
            Effect.sync(() => {
              for (const alert of alerts) Metrics.alertsRaised.inc({ type: alert.alert_type })
            })
          )
        ),
      retries: config.retries,
      deadLetterTopic: names.alertsDlq
    })
    yield* Effect.forkScoped(superviseConsumer("notifier", pipeline))
    yield* Effect.logInfo(
      `notifier consuming ${names.events} as group ${config.groupId} (LOW < ${thresholds.lowBelow}, HIGH > ${thresholds.highAbove})`
    )
  })
)
