import { NotFound, type ServiceUnavailable, SNOOZE_MINUTES, ValidationError } from "@dexmon/api"
import {
  AlertActionEvent,
  type AlertActionRequest,
  type AlertId,
  alertActionHeaders,
  EventIds,
  encodeAlertActionEvent,
  type SensorId,
  type UserId
} from "@dexmon/domain"
import { currentTraceHeaders, Metrics } from "@dexmon/observability"
import { AlertStore, EventLog, SensorOwnership, Topics } from "@dexmon/ports"
import { Clock, Context, Effect, Layer, Option } from "effect"
import { unavailable } from "./Unavailable.ts"

const MINUTE = 60_000
const encoder = new TextEncoder()

export interface ActionAccepted {
  readonly action_id: string
}

/**
 * The owner's controls: acknowledge an episode, snooze its kind, stop a
 * sensor's session. Each is checked against the caller (another user's alert
 * or sensor is not found), then appended to `glucose.events` with the
 * sensor's key, so the notifier applies it in order with the readings,
 * through crashes and rebalances; it answers once the log holds the action.
 */
export class AlertControls extends Context.Service<
  AlertControls,
  {
    readonly acknowledge: (
      userId: UserId,
      alertId: AlertId
    ) => Effect.Effect<ActionAccepted, NotFound | ServiceUnavailable>
    readonly snooze: (
      userId: UserId,
      alertId: AlertId,
      minutes: number
    ) => Effect.Effect<ActionAccepted, NotFound | ValidationError | ServiceUnavailable>
    readonly stopSensor: (
      userId: UserId,
      sensorId: SensorId
    ) => Effect.Effect<ActionAccepted, NotFound | ServiceUnavailable>
    /**
     * Appends the owner's release of the sensor (the caller must own it): the notifier ends the owner's
     * alerting on it there, in order with the readings. The ownership itself is deleted after this.
     */
    readonly releaseSensor: (
      userId: UserId,
      sensorId: SensorId
    ) => Effect.Effect<ActionAccepted, NotFound | ServiceUnavailable>
  }
>()("dexmon/gateway/AlertControls") {
  static readonly layer = Layer.effect(
    AlertControls,
    Effect.gen(function* () {
      const alerts = yield* AlertStore
      const ownership = yield* SensorOwnership
      const eventLog = yield* EventLog
      const { names } = yield* Topics
      const ids = yield* EventIds

      const append = Effect.fnUntraced(function* (userId: UserId, sensorId: SensorId, action: AlertActionRequest) {
        const event = new AlertActionEvent({
          schema: "alert-action",
          schema_version: 1,
          action_id: yield* ids.next,
          sensor_id: sensorId,
          user_id: userId,
          action,
          requested_at: yield* Clock.currentTimeMillis
        })
        const traceHeaders = yield* currentTraceHeaders
        yield* eventLog
          .append(names.events, [
            {
              key: sensorId,
              value: encoder.encode(encodeAlertActionEvent(event)),
              headers: { ...alertActionHeaders(event), ...traceHeaders }
            }
          ])
          .pipe(Effect.catchTag("EventLogError", unavailable("the event log")))
        Metrics.eventsProduced.inc({ topic: names.events })
        yield* Effect.annotateCurrentSpan({ "dexmon.action": action.type, "dexmon.sensor_id": sensorId })
        return { action_id: event.action_id }
      })

      /** The caller's alert, or 404: the store answers none for another user's id, so its existence is not revealed. */
      const ownAlert = Effect.fnUntraced(function* (userId: UserId, alertId: AlertId) {
        const alert = yield* alerts
          .get(userId, alertId)
          .pipe(Effect.catchTag("AlertStoreError", unavailable("the alert store")))
        if (Option.isNone(alert)) return yield* new NotFound({ message: "no such alert for this caller" })
        return alert.value
      })

      const acknowledge = Effect.fn("AlertControls.acknowledge")(function* (userId: UserId, alertId: AlertId) {
        const alert = yield* ownAlert(userId, alertId)
        return yield* append(userId, alert.sensor_id, { type: "acknowledge", alert_id: alert.alert_id })
      })

      const snooze = Effect.fn("AlertControls.snooze")(function* (userId: UserId, alertId: AlertId, minutes: number) {
        const alert = yield* ownAlert(userId, alertId)
        if (alert.alert_type === "URGENT_LOW" && minutes > SNOOZE_MINUTES.urgentLowMaximum) {
          const message = `must be at most ${SNOOZE_MINUTES.urgentLowMaximum} on an URGENT_LOW alert`
          return yield* new ValidationError({
            message: `invalid request payload: minutes: ${message}`,
            issues: [{ path: "minutes", message }]
          })
        }
        const until = (yield* Clock.currentTimeMillis) + minutes * MINUTE
        return yield* append(userId, alert.sensor_id, {
          type: "snooze",
          alert_id: alert.alert_id,
          kind: alert.alert_type,
          until
        })
      })

      const stopSensor = Effect.fn("AlertControls.stopSensor")(function* (userId: UserId, sensorId: SensorId) {
        const owner = yield* ownership
          .ownerOf(sensorId)
          .pipe(Effect.catchTag("SensorOwnershipError", unavailable("sensor ownership")))
        if (Option.isNone(owner) || owner.value !== userId) {
          return yield* new NotFound({ message: "no such sensor for this caller" })
        }
        return yield* append(userId, sensorId, { type: "stop" })
      })

      const releaseSensor = Effect.fn("AlertControls.releaseSensor")(function* (userId: UserId, sensorId: SensorId) {
        const owner = yield* ownership
          .ownerOf(sensorId)
          .pipe(Effect.catchTag("SensorOwnershipError", unavailable("sensor ownership")))
        if (Option.isNone(owner) || owner.value !== userId) {
          return yield* new NotFound({ message: "no such sensor for this caller" })
        }
        return yield* append(userId, sensorId, { type: "release" })
      })

      return AlertControls.of({ acknowledge, snooze, stopSensor, releaseSensor })
    })
  )
}
