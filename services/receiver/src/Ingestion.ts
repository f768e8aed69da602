import { Forbidden, type ReadingInput, ServiceUnavailable, ValidationError, type ValidationIssue } from "@dexmon/api"
import {
  EventIds,
  eventHeaders,
  GlucoseEvent,
  HotRetention,
  type SensorId,
  type SensorLimit,
  type Source,
  type UserId
} from "@dexmon/domain"
import { currentTraceHeaders, Metrics } from "@dexmon/observability"
import { AlertSettingsStore, EventLog, type EventLogError, SensorOwnership, Topics } from "@dexmon/ports"
import { Clock, Context, Effect, Layer, Result } from "effect"
import { glucoseEventJson } from "./EventJson.ts"

/**
 * What the 503 of a failed append tells the client: whether the readings may have been accepted, and
 * that sending them again is safe either way (a reading is identified by its `(sensor_id, timestamp)`,
 * so one that arrives twice is stored once).
 */
export const appendFailureMessage = (error: EventLogError): string => {
  const retry = "retry the same readings after the seconds in Retry-After"
  switch (error.appendOutcome) {
    case "refused":
      return `the receiver's queue of appends to the event log is full; nothing was accepted; ${retry}`
    case "withdrawn":
      return `the event log did not take the readings in time; nothing was accepted; ${retry}`
    default:
      return `the event log did not confirm the readings in time: they may or may not have been accepted; ${retry}, which is safe: readings are idempotent by (sensor_id, timestamp)`
  }
}

/** A reading to accept: the API's, and from the Nightscout API also whether it is a sensor limit (`LO`, `HI`). */
export type AcceptedReading = ReadingInput & { readonly sensor_limit?: SensorLimit | undefined }

/** How far ahead of the server clock a reading may be stamped (phone clocks drift). */
export const MAX_FUTURE_SKEW_MS = 5 * 60_000

export interface Accepted {
  readonly accepted: number
  readonly event_ids: ReadonlyArray<string>
}

const encoder = new TextEncoder()

/**
 * Turns accepted readings into events on `glucose.events`, keyed by sensor so
 * one sensor's events stay in order, and answers only once the event log holds
 * them durably. A batch is refused whole when any reading is out of range.
 */
export class Ingestion extends Context.Service<
  Ingestion,
  {
    /**
     * Refuses readings stamped more than 5 minutes ahead or older than the hot retention, naming each by
     * `timestampPathOf` (the field as the caller's API calls it); `accept` checks the same first.
     */
    readonly check: (
      readings: ReadonlyArray<ReadingInput>,
      timestampPathOf: (index: number) => string,
      now?: number
    ) => Effect.Effect<void, ValidationError>
    /**
     * Appends the readings as one batch. `checkedAt` is the instant their times are checked against (default: now),
     * so a caller that sorted out the times it does not take, and then appends in several batches, is not refused
     * in a later batch by a clock that moved on.
     */
    readonly accept: (
      userId: UserId,
      source: Source,
      readings: ReadonlyArray<AcceptedReading>,
      timestampPathOf: (index: number) => string,
      checkedAt?: number
    ) => Effect.Effect<Accepted, ValidationError | Forbidden | ServiceUnavailable>
  }
>()("dexmon/receiver/Ingestion") {
  static readonly layer = Layer.effect(
    Ingestion,
    Effect.gen(function* () {
      const eventLog = yield* EventLog
      const { names } = yield* Topics
      const ids = yield* EventIds
      const retention = yield* HotRetention
      const ownership = yield* SensorOwnership
      const settings = yield* AlertSettingsStore

      /**
       * Gives back the sensors a batch claimed when the batch turns out not to be accepted, so a refused
       * batch leaves no owner behind (the release deletes only this user's rows). A release that fails is
       * logged and leaves the sensor with this user, who may release it through the API. One gap: a second
       * batch of the same user, accepted meanwhile with the same new sensor, found it already claimed and
       * so does not hold it; the sensor is then free until this user's next batch claims it again.
       */
      const releaseClaims = (userId: UserId, sensorIds: ReadonlyArray<SensorId>) =>
        sensorIds.length === 0
          ? Effect.void
          : ownership.release(userId, sensorIds).pipe(
              Effect.flatMap((released) =>
                Effect.logInfo(`batch not accepted: released ${released.length} sensor(s) it had claimed`)
              ),
              Effect.catch((error) =>
                Effect.logError("releasing the sensors of a batch not accepted failed; they stay claimed", error)
              )
            )

      const check = Effect.fn("Ingestion.check")(function* (
        readings: ReadonlyArray<ReadingInput>,
        timestampPathOf: (index: number) => string,
        checkedAt?: number
      ) {
        const now = checkedAt ?? (yield* Clock.currentTimeMillis)
        const issues: Array<ValidationIssue> = []
        readings.forEach((reading, index) => {
          if (reading.timestamp > now + MAX_FUTURE_SKEW_MS) {
            issues.push({ path: timestampPathOf(index), message: "must not be more than 5 minutes in the future" })
          } else if (reading.timestamp < now - retention.millis) {
            issues.push({
              path: timestampPathOf(index),
              message: `must not be older than the hot retention (${Math.round(retention.millis / 86_400_000)} days)`
            })
          }
        })
        if (issues.length > 0) {
          return yield* ValidationError.fromIssues("payload", issues)
        }
      })

      const accept = Effect.fn("Ingestion.accept")(function* (
        userId: UserId,
        source: Source,
        readings: ReadonlyArray<AcceptedReading>,
        timestampPathOf: (index: number) => string,
        checkedAt?: number
      ) {
        yield* check(readings, timestampPathOf, checkedAt)
        const now = yield* Clock.currentTimeMillis
        // A sensor belongs to the user whose accepted batch first posted it: another user's batch is refused
        // whole, and claims none of its new sensors. The refusal names no sensor: which of them is someone
        // else's is that user's business. The settings version is read at the same time (on every request,
        // never cached: a reading posted after a settings change answered is judged by it); both run to their
        // end whatever the other's failure, so a claim is never cut off half-way and can be given back.
        const [claimed, settingsRead] = yield* Effect.all(
          [
            ownership.claim(
              userId,
              readings.map((reading) => reading.sensor_id)
            ),
            settings.currentVersion(userId)
          ],
          { concurrency: 2, mode: "result" }
        )
        if (Result.isFailure(claimed)) {
          yield* Effect.logError("sensor ownership check failed; nothing was accepted", claimed.failure)
          return yield* new ServiceUnavailable({ message: "sensor ownership is unavailable; retry later" })
        }
        const claim = claimed.success
        if (claim.foreign.length > 0) {
          return yield* new Forbidden({
            message: "a sensor in this batch belongs to another user; nothing was accepted"
          })
        }
        const releaseFreshClaims = releaseClaims(userId, claim.claimed)
        if (Result.isFailure(settingsRead)) {
          yield* releaseFreshClaims
          yield* Effect.logError("alert settings lookup failed; nothing was accepted", settingsRead.failure)
          return yield* new ServiceUnavailable({ message: "alert settings are unavailable; retry later" })
        }
        const settingsVersion = settingsRead.success
        const events: Array<GlucoseEvent> = []
        for (const reading of readings) {
          events.push(
            // Not checked again: the API's schema has validated the reading, and the other fields are made here.
            new GlucoseEvent(
              {
                schema_version: 1,
                event_id: yield* ids.next,
                sensor_id: reading.sensor_id,
                user_id: userId,
                timestamp: reading.timestamp,
                glucose_value: reading.glucose_value,
                source,
                received_at: now,
                settings_version: settingsVersion,
                ...(reading.sensor_limit === undefined ? {} : { sensor_limit: reading.sensor_limit })
              },
              { disableChecks: true }
            )
          )
        }
        // The trace context travels with each event, so consumers continue this request's trace.
        const traceHeaders = yield* currentTraceHeaders
        // Appended oldest first: uploaders (Nightscout's, Dexcom Share bridges) send newest first, and the
        // alert engine judges a sensor's readings in log order. The sort is stable, so two values for one
        // instant keep the order (and the event ids) they were posted with.
        const inLogOrder = [...events].sort((a, b) => a.timestamp - b.timestamp)
        yield* eventLog
          .append(
            names.events,
            inLogOrder.map((event) => ({
              key: event.sensor_id,
              value: encoder.encode(glucoseEventJson(event)),
              headers: { ...eventHeaders(event), ...traceHeaders }
            }))
          )
          .pipe(
            Effect.tapError((error) =>
              Effect.logError(`event log append failed (${error.appendOutcome ?? "unknown"} outcome)`, error)
            ),
            // Refused or withdrawn: nothing is in the log, so the batch claims nothing. With an unknown outcome
            // the readings may be in the log (and stored under this user), so the claim stays with them.
            Effect.tapError((error) =>
              error.appendOutcome === "refused" || error.appendOutcome === "withdrawn"
                ? releaseFreshClaims
                : Effect.void
            ),
            Effect.mapError((error) => new ServiceUnavailable({ message: appendFailureMessage(error) }))
          )
        Metrics.eventsProduced.inc({ topic: names.events }, events.length)
        yield* Effect.annotateCurrentSpan({ "dexmon.readings": events.length, "dexmon.source": source })
        return { accepted: events.length, event_ids: events.map((event) => event.event_id) }
      })

      return Ingestion.of({ check, accept })
    })
  )
}
