import { AlertId, AlertType, EventId, SensorId, SilencedBy, UserId } from "@dexmon/domain"
import { Effect, Schema } from "effect"

/** A field that states written before it existed decode with `value`. */
const since = <S extends Schema.Top>(schema: S, value: S["Encoded"]) =>
  schema.pipe(Schema.withDecodingDefaultKey(Effect.succeed(value)))

/** One SENSOR reading the engine remembers for the trend: timestamp, the value that stands, the event that wrote it. */
export const WindowReading = Schema.Struct({ t: Schema.Number, v: Schema.Number, e: EventId })
export type WindowReading = typeof WindowReading.Type

/** An episode that has not ended yet. */
export const OpenEpisode = Schema.Struct({
  alert_id: AlertId,
  kind: AlertType,
  /** `ACTIVE` once notified; `BACKFILLED` while only late readings saw it. */
  status: Schema.Literals(["ACTIVE", "BACKFILLED"]),
  started_at: Schema.Number,
  trigger_value: Schema.Number,
  extreme_value: Schema.Number,
  last_value: Schema.Number,
  last_reading_at: Schema.Number,
  /** Timestamps of the consecutive clear readings seen since the condition last held. */
  clears: Schema.Array(Schema.Number),
  /** Notifications sent for the episode (its first, repeats); 0 while it was never notified. */
  notifications: since(Schema.Number, 0),
  /** The last repeat number decided (sent or skipped): repeat n is due at `started_at + n × repeat`. */
  repeats: since(Schema.Number, 0),
  last_notified_at: since(Schema.NullOr(Schema.Number), null),
  /** When the owner last acknowledged the episode (log time of the action), and who. */
  acknowledged_at: since(Schema.NullOr(Schema.Number), null),
  acknowledged_by: since(Schema.NullOr(UserId), null),
  /** Whether the acknowledgement still holds back repeats (an urgent low's reminder lifts it). */
  acknowledgement_holds: since(Schema.Boolean, false),
  /** Until when the owner snoozed this kind while the episode was open. */
  snoozed_until: since(Schema.NullOr(Schema.Number), null),
  /**
   * Why the last notification due was not sent. An episode never told because
   * of `QUIET_HOURS` or `SNOOZED` is held: it is told once neither holds it.
   */
  silenced_by: since(Schema.NullOr(SilencedBy), null)
})
export type OpenEpisode = typeof OpenEpisode.Type

/**
 * What the engine keeps per sensor between inputs; small and bounded: the
 * SENSOR readings of the trend window (at most `MAX_WINDOW_READINGS`), the
 * open episodes (at most one per kind), the newest reading, the log position
 * and time the state covers.
 */
export const SensorState = Schema.Struct({
  sensor_id: SensorId,
  user_id: UserId,
  /** The log offset of the last input applied; a redelivered input at or before it changes nothing. */
  position: Schema.Number,
  /** The latest time the engine has seen for this sensor: a record's log time or a tick's time. */
  clock: Schema.Number,
  newest: Schema.NullOr(Schema.Struct({ t: Schema.Number, v: Schema.Number, live: Schema.Boolean })),
  window: Schema.Array(WindowReading),
  open: Schema.Array(OpenEpisode),
  /** Silent for longer than the retirement span: no longer checked until it sends again. */
  retired: Schema.Boolean,
  /** Kinds the owner snoozed for this sensor, until when (across episodes). */
  snoozes: since(Schema.Array(Schema.Struct({ kind: AlertType, until: Schema.Number })), []),
  /** The sensor's session was stopped (a sensor change): no NO_DATA until it sends again. */
  stopped: since(Schema.Boolean, false),
  /**
   * The owner's alert-settings version of the newest reading (0: the
   * deployment's rules): the clock and the owner's actions are decided with it.
   */
  settings_version: since(Schema.Number, 0),
  /**
   * The sensor changed hands to this state's user (see `decide`): its episode ids name the user too,
   * so they never take one of the previous owner's.
   */
  handed_over: since(Schema.Boolean, false)
})
export type SensorState = typeof SensorState.Type

/** Most readings the trend window keeps, whatever the sensor's cadence (a 1-minute sensor fills 21). */
export const MAX_WINDOW_READINGS = 48

export const initialSensorState = (sensorId: SensorId, userId: UserId): SensorState => ({
  sensor_id: sensorId,
  user_id: userId,
  position: -1,
  clock: 0,
  newest: null,
  window: [],
  open: [],
  retired: false,
  snoozes: [],
  stopped: false,
  settings_version: 0,
  handed_over: false
})

/** The state as the alert-state store keeps it (JSON text). */
export const SensorStateJson = Schema.fromJsonString(SensorState)
export const encodeSensorState = Schema.encodeSync(SensorStateJson)
export const decodeSensorState = Schema.decodeUnknownEffect(SensorStateJson)
