import { createHash } from "node:crypto"
import { Config, Context, Effect, Layer, Schema } from "effect"
import { GlucoseValue } from "./GlucoseEvent.ts"
import { AlertId, SensorId, UserId } from "./Identifiers.ts"
import { IsoTimestamp } from "./Timestamp.ts"

export const AlertType = Schema.Literals(["LOW", "HIGH"])
export type AlertType = typeof AlertType.Type

/** An alert is `SENT` once it is persisted; acknowledgement states come with the app's alert inbox. */
export const AlertStatus = Schema.Literals(["SENT"])
export type AlertStatus = typeof AlertStatus.Type

export class Alert extends Schema.Class<Alert>("dexmon/domain/Alert")({
  alert_id: AlertId,
  user_id: UserId,
  sensor_id: SensorId,
  timestamp: IsoTimestamp,
  glucose_value: GlucoseValue,
  alert_type: AlertType,
  status: AlertStatus
}) {}

/**
 * The alert id is a UUID (version 8, name-based on SHA-256) of
 * `(sensor_id, timestamp, type)`: a replayed or redelivered event produces the
 * same id, so every alert store can write it idempotently.
 */
export const deriveAlertId = (sensorId: string, timestamp: number, type: AlertType): AlertId => {
  const hex = createHash("sha256").update(`${sensorId}\u0000${timestamp}\u0000${type}`).digest("hex")
  const variant = ((Number.parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16)
  return AlertId.make(
    `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`
  )
}

/** Glucose thresholds in mg/dL: below `lowBelow` is LOW, above `highAbove` is HIGH. */
export class AlertThresholds extends Context.Service<
  AlertThresholds,
  {
    readonly lowBelow: number
    readonly highAbove: number
  }
>()("dexmon/domain/AlertThresholds") {
  static readonly layerConfig = Layer.effect(
    AlertThresholds,
    Effect.gen(function* () {
      const lowBelow = yield* Config.Number("DEXMON_ALERT_LOW_BELOW").pipe(Config.withDefault(70))
      const highAbove = yield* Config.Number("DEXMON_ALERT_HIGH_ABOVE").pipe(Config.withDefault(250))
      return AlertThresholds.of({ lowBelow, highAbove })
    })
  )

  static readonly layerDefault = Layer.succeed(AlertThresholds, AlertThresholds.of({ lowBelow: 70, highAbove: 250 }))
}

/** Which alert, if any, a glucose value raises. */
export const classifyGlucose = (value: number, thresholds: AlertThresholds["Service"]): AlertType | undefined =>
  value < thresholds.lowBelow ? "LOW" : value > thresholds.highAbove ? "HIGH" : undefined
