import {
  type ActionInput,
  type AlertChange,
  AlertRules,
  type AlertRulesShape,
  AlertSettings,
  decide,
  decodeSensorState,
  durationConfig,
  encodeSensorState,
  initialSensorState,
  nextCheckAt,
  type ReadingInput,
  rulesFor,
  type SensorState,
  type TickInput
} from "@dexmon/alerting"
import {
  AlertActionEvent,
  AlertClockEvent,
  AlertNotification,
  alertClockHeaders,
  alertNotificationHeaders,
  decodeEventsTopicBytes,
  type EventsTopicMessage,
  encodeAlertClockEvent,
  encodeAlertNotification,
  type GlucoseEvent,
  type NotificationType,
  notificationId,
  type SensorId,
  type UserId
} from "@dexmon/domain"
import { currentTraceHeaders, Metrics } from "@dexmon/observability"
import {
  AlertSettingsStore,
  AlertStateStore,
  AlertStore,
  EventLog,
  nextStateVersion,
  Topics,
  VERSION_SALT_VALUES
} from "@dexmon/ports"
import { type DecodedBatch, recordTraceparent, runConsumer, superviseConsumer, writeWithRetry } from "@dexmon/streams"
import { Clock, Config, Effect, Layer, Option, Random, Schedule, Schema, Stream } from "effect"

export const NotifierConfig = Config.all({
  groupId: Config.String("DEXMON_NOTIFIER_GROUP").pipe(Config.withDefault("dexmon-notifier")),
  maxBatchSize: Config.Int("DEXMON_NOTIFIER_BATCH_SIZE").pipe(Config.withDefault(500)),
  retries: Config.Int("DEXMON_WRITE_RETRIES").pipe(Config.withDefault(5)),
  /** How often the owned, caught-up partitions' sensors are checked for silence (`NO_DATA`, retirement). */
  tickEvery: durationConfig("DEXMON_ALERT_TICK_EVERY", 60_000)
})

/**
 * One input for one sensor's engine, and the log partition the sensor's
 * events are on. A reading names the sensor's owner (its first state is made
 * for them); a tick only ever reaches sensors that have a state. `traceparent`
 * is the trace of the input's record (`recordTraceparent`), which the
 * notifications it decides continue.
 */
type SensorInput = {
  readonly log_partition: number
  readonly sensor_id: SensorId
  readonly traceparent?: string | undefined
} & (
  | { readonly input: ReadingInput | ActionInput; readonly user_id: UserId }
  | { readonly input: TickInput; readonly user_id?: undefined }
)

/** A reading event with where it sits in the log: the engine's position and lateness come from there. */
const readingInput = (event: GlucoseEvent, partition: number, offset: number, logTime: number): SensorInput => ({
  log_partition: partition,
  sensor_id: event.sensor_id,
  user_id: event.user_id,
  input: {
    _tag: "Reading",
    position: offset,
    logTime,
    event: {
      timestamp: event.timestamp,
      glucose_value: event.glucose_value,
      source: event.source,
      event_id: event.event_id
    },
    settingsVersion: event.settings_version ?? 0,
    // The engine hands the sensor over when this is not its state's user.
    user_id: event.user_id
  }
})

/** An owner's action with where it sits in the log: it is decided in order with the sensor's readings. */
const actionInput = (event: AlertActionEvent, partition: number, offset: number, logTime: number): SensorInput => ({
  log_partition: partition,
  sensor_id: event.sensor_id,
  user_id: event.user_id,
  input: {
    _tag: "Action",
    position: offset,
    logTime,
    // A former owner's action, appended after the sensor changed hands, changes nothing (the engine checks).
    user_id: event.user_id,
    // Only the sensor's owner may act (the gateway checks), so the acknowledger is the event's user.
    action: event.action.type === "acknowledge" ? { ...event.action, by: event.user_id } : event.action
  }
})

/** A clock tick a notifier appended for a sensor, decided at its place in the log like the sensor's readings. */
const clockInput = (event: AlertClockEvent, partition: number, offset: number): SensorInput => ({
  log_partition: partition,
  sensor_id: event.sensor_id,
  input: { _tag: "Tick", now: event.tick_at, position: offset }
})

const notificationTypes: Partial<Record<AlertChange["kind"], NotificationType>> = {
  opened: "alert",
  activated: "alert",
  released: "alert",
  repeated: "repeat",
  resolved: "all_clear"
}

/** A change someone is to be told of, as its event on `glucose.alerts`; decided at its last notification's time. */
const toNotification = (change: AlertChange): AlertNotification => {
  const { alert } = change
  return new AlertNotification({
    schema: "alert-notification",
    schema_version: 1,
    notification_id: notificationId(alert.alert_id, change.decision),
    alert_id: alert.alert_id,
    sequence: change.sequence,
    type: notificationTypes[change.kind] ?? "alert",
    sensor_id: alert.sensor_id,
    user_id: alert.user_id,
    decided_at: alert.last_notified_at ?? alert.started_at,
    alert
  })
}

const encoder = new TextEncoder()

const decodeStoredSettings = Schema.decodeUnknownEffect(Schema.fromJsonString(AlertSettings))

/** Settings versions never change, so the rules made from them are kept (up to this many users' versions). */
const REMEMBERED_RULES = 10_000

/**
 * The notifier: the alert engine (`@dexmon/alerting`) run as a stateful
 * stream processor keyed like the event log. Per batch of one partition it
 * loads the states of the batch's sensors, decides each record in log order,
 * writes the touched episodes, appends the notifications it decided to
 * `glucose.alerts`, then writes the states, and commits only then.
 *
 * Everything the engine decides is a record of the log: readings, the
 * owner's actions, and the clock, which a fiber appends once a
 * `DEXMON_ALERT_TICK_EVERY` for each sensor whose check time has passed, on
 * the partitions this member owns and has consumed to their end (a notifier
 * catching up decides silences from the log, not from its clock). So the
 * engine is deterministic over the log, and a state's version is the log
 * position it covers: the store keeps the highest, and a zombie that still
 * decides a partition it lost writes the states the new owner writes, or
 * older ones that change nothing. A redelivered record is at or before its
 * sensor's position and changes nothing. A crash before the state write
 * decides the batch again, to the same rows and, for the same decisions, the
 * same notification keys (an episode's first, repeat n, its reminder, its all
 * clear): notifications are at least once. A shutdown is no crash: it lets a
 * batch's append and state write finish together, so a graceful stop appends
 * nothing twice. Partitions run side by side (their sensors are disjoint).
 */
export const NotifierLive = Layer.effectDiscard(
  Effect.gen(function* () {
    const eventLog = yield* EventLog
    const alerts = yield* AlertStore
    const states = yield* AlertStateStore
    const rules = yield* AlertRules
    const settings = yield* AlertSettingsStore
    const { names } = yield* Topics
    const config = yield* NotifierConfig
    let owned: ReadonlyArray<number> = []
    const rulesByVersion = new Map<string, AlertRulesShape>()

    /**
     * The rules a user's settings version stands for: the deployment's for
     * version 0, otherwise the deployment's refined by that stored document.
     * A version the store does not hold, or cannot decode, falls back to the
     * deployment's rules (logged): an alert by the defaults beats none.
     */
    const rulesAt = Effect.fnUntraced(function* (userId: UserId, version: number) {
      if (version === 0) return rules
      const key = `${userId}\u0000${version}`
      const known = rulesByVersion.get(key)
      if (known !== undefined) return known
      const stored = yield* settings.at(userId, version)
      if (Option.isNone(stored)) {
        yield* Effect.logError(
          `alert settings version ${version} of ${userId} is missing; the deployment's rules apply`
        )
        return rules
      }
      const decoded = yield* decodeStoredSettings(stored.value.document).pipe(Effect.option)
      if (Option.isNone(decoded)) {
        yield* Effect.logError(
          `alert settings version ${version} of ${userId} do not decode; the deployment's rules apply`
        )
        return rules
      }
      const userRules = rulesFor(rules, decoded.value)
      if (rulesByVersion.size >= REMEMBERED_RULES) rulesByVersion.delete(rulesByVersion.keys().next().value!)
      rulesByVersion.set(key, userRules)
      return userRules
    })

    /** Decides the inputs (in order) on the stored states, then writes episodes and states. */
    const decideAndStore = Effect.fnUntraced(function* (inputs: ReadonlyArray<SensorInput>) {
      const sensorIds = [...new Set(inputs.map((i) => i.sensor_id))]
      const stored = yield* states.load(sensorIds)
      const working = new Map<SensorId, { state: SensorState; version: bigint | undefined; changed: boolean }>()
      for (const { sensor_id, user_id } of inputs) {
        if (working.has(sensor_id)) continue
        const row = stored.get(sensor_id)
        if (row !== undefined) {
          const state = yield* Effect.orDie(decodeSensorState(row.state))
          working.set(sensor_id, { state, version: row.version, changed: false })
        } else if (user_id !== undefined) {
          working.set(sensor_id, {
            state: initialSensorState(sensor_id, user_id),
            version: undefined,
            changed: false
          })
        }
      }
      const partitionOf = new Map(inputs.map((i) => [i.sensor_id, i.log_partition]))
      // Every settings version the batch can need, before deciding: those its readings carry and its states hold.
      const versions = new Map<string, { userId: UserId; version: number }>()
      const need = (userId: UserId, version: number) => versions.set(`${userId}\u0000${version}`, { userId, version })
      for (const entry of working.values()) need(entry.state.user_id, entry.state.settings_version)
      for (const { input, user_id } of inputs) {
        if (input._tag === "Reading" && user_id !== undefined) need(user_id, input.settingsVersion ?? 0)
      }
      const rulesOf = new Map<string, AlertRulesShape>()
      for (const [key, { userId, version }] of versions) rulesOf.set(key, yield* rulesAt(userId, version))
      const rulesOfUser = (userId: UserId, version: number) => rulesOf.get(`${userId}\u0000${version}`) ?? rules
      const changes: Array<AlertChange> = []
      // Each notification with the trace of the record whose decision made it: the reading's POST, the owner's action.
      const notified: Array<{ readonly notification: AlertNotification; readonly traceparent: string | undefined }> = []
      for (const { sensor_id, user_id, input, traceparent } of inputs) {
        const entry = working.get(sensor_id)
        // A tick for a sensor whose state went away has nothing to check.
        if (entry === undefined) continue
        // A reading is judged by its own user's settings stamped on it, never by the state's user's: when they
        // differ the sensor changed hands (the engine ends the former owner's episodes). The clock and actions
        // follow the state's user's settings of the newest reading.
        const decision =
          input._tag === "Reading" && user_id !== undefined
            ? decide(rulesOfUser(user_id, input.settingsVersion ?? 0), entry.state, input)
            : decide(rulesOfUser(entry.state.user_id, entry.state.settings_version), entry.state, input)
        if (decision.state !== entry.state) {
          entry.state = decision.state
          entry.changed = true
        }
        changes.push(...decision.changes)
        for (const change of decision.changes) {
          if (change.notify) notified.push({ notification: toNotification(change), traceparent })
        }
      }
      // Every row a change left; the store keeps the last version of each episode (its contract).
      if (changes.length > 0)
        yield* alerts.save(changes.map((change) => change.alert)).pipe(Metrics.timeStoreWrite("alerts"))
      // Before the states: a notification appended and then lost with its state is decided and appended again,
      // while one whose state was written first could be lost.
      // A record that carries no trace (a clock tick while spans are not exported) leaves its notification the batch's.
      const batchTrace = notified.some((n) => n.traceparent === undefined) ? yield* currentTraceHeaders : {}
      const salt = yield* Random.nextIntBetween(0, VERSION_SALT_VALUES, { halfOpen: true })
      const writes = [...working.values()]
        .filter((entry) => entry.changed)
        .map((entry) => ({
          sensor_id: entry.state.sensor_id,
          user_id: entry.state.user_id,
          log_partition: partitionOf.get(entry.state.sensor_id) ?? 0,
          state: encodeSensorState(entry.state),
          check_at: nextCheckAt(rulesOfUser(entry.state.user_id, entry.state.settings_version), entry.state),
          version: nextStateVersion(entry.state.position, entry.version, salt)
        }))
      // Not interrupted between the two: a shutdown (SIGTERM, a rolling restart) that cut in after the append
      // would leave the states behind it, and the next owner would decide and append the same notifications
      // again. The shutdown waits for the state write instead (its deadline, `DEXMON_SHUTDOWN_TIMEOUT`, bounds it).
      yield* Effect.uninterruptible(
        Effect.gen(function* () {
          if (notified.length > 0) {
            yield* eventLog.append(
              names.alerts,
              notified.map(({ notification, traceparent }) => ({
                key: notification.sensor_id,
                value: encoder.encode(encodeAlertNotification(notification)),
                headers: {
                  ...alertNotificationHeaders(notification),
                  ...(traceparent === undefined ? batchTrace : { traceparent })
                }
              }))
            )
          }
          if (writes.length > 0) yield* states.save(writes)
        })
      )
      return changes
    })

    /** `decideAndStore` for a batch of one partition, counted once its states are written. */
    const decideAndCount = (inputs: ReadonlyArray<SensorInput>) =>
      decideAndStore(inputs).pipe(
        Effect.tap((changes) =>
          Effect.sync(() => {
            for (const change of changes) {
              if (change.kind === "opened" || change.kind === "recorded")
                Metrics.alertsRaised.inc({ type: change.alert.alert_type })
              // Counted once the batch's states are written: a batch decided again after a failure counts once.
              if (change.notify)
                Metrics.notificationsDecided.inc({
                  alert_type: change.alert.alert_type,
                  type: notificationTypes[change.kind] ?? "alert"
                })
            }
          })
        ),
        Effect.asVoid
      )

    const applyWithEngine = (batches: Stream.Stream<DecodedBatch<EventsTopicMessage>>) =>
      batches.pipe(
        Stream.map(
          (batch): DecodedBatch<SensorInput> => ({
            ...batch,
            decoded: batch.decoded.map(({ record, value }) => ({
              record,
              value: {
                ...(value instanceof AlertActionEvent
                  ? actionInput(value, record.partition, record.offset, record.timestamp)
                  : value instanceof AlertClockEvent
                    ? clockInput(value, record.partition, record.offset)
                    : readingInput(value, record.partition, record.offset, record.timestamp)),
                traceparent: recordTraceparent(batch, record)
              }
            }))
          })
        ),
        writeWithRetry(decideAndCount, {
          retries: config.retries,
          initialDelay: 100,
          maxDelay: 5_000,
          isTransient: (error) => error.transient
        })
      )
    const pipeline = runConsumer({
      eventLog,
      topic: names.events,
      groupId: config.groupId,
      maxBatchSize: config.maxBatchSize,
      decode: decodeEventsTopicBytes,
      apply: applyWithEngine,
      deadLetterTopic: names.alertsDlq,
      onAssigned: (partitions) => {
        owned = partitions
      }
    })

    /**
     * Appends a clock tick to the event log for each due sensor of every owned partition that is consumed to
     * its end; the pipeline decides it there, in order with the sensor's records.
     */
    const tick = Effect.gen(function* () {
      if (owned.length === 0) return
      const ends = yield* eventLog.endOffsets(names.events)
      const committed = yield* eventLog.committedOffsets(config.groupId, names.events)
      const now = yield* Clock.currentTimeMillis
      for (const partition of owned) {
        if ((committed.get(partition) ?? 0) < (ends.get(partition) ?? 0)) continue
        const due = yield* states.due(partition, now)
        for (let start = 0; start < due.length; start += config.maxBatchSize) {
          yield* eventLog.append(
            names.events,
            due.slice(start, start + config.maxBatchSize).map((sensor_id) => {
              const event = new AlertClockEvent({ schema: "alert-clock", schema_version: 1, sensor_id, tick_at: now })
              return {
                key: sensor_id,
                value: encoder.encode(encodeAlertClockEvent(event)),
                headers: alertClockHeaders(event)
              }
            })
          )
        }
      }
    }).pipe(
      Effect.catchCause((cause) => Effect.logWarning("alert clock tick failed; trying again at the next one", cause)),
      Effect.withSpan("Notifier.tick")
    )

    yield* Effect.forkScoped(superviseConsumer("notifier", pipeline))
    yield* Effect.forkScoped(
      Effect.repeat(tick, Schedule.spaced(config.tickEvery)).pipe(Effect.annotateLogs({ consumer: "notifier" }))
    )
    yield* Effect.logInfo(
      `notifier consuming ${names.events} as group ${config.groupId}: URGENT_LOW <= ${rules.urgentLowAt}, LOW < ${rules.low.below}${rules.low.enabled ? "" : " (off)"}, HIGH > ${rules.high.above}${rules.high.enabled ? "" : " (off)"}, live window ${rules.liveWindow / 60_000} min, NO_DATA after ${rules.noData.after / 60_000} min, clock every ${config.tickEvery / 1000} s`
    )
  })
)
