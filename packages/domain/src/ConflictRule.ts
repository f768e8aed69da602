import type { EventPosition, ReadingCandidate, ReadingState } from "./Reading.ts"

/** What applying one event to the stored reading at its key does. */
export type ConflictOutcome =
  | { readonly _tag: "Insert"; readonly next: ReadingState }
  | { readonly _tag: "Replace"; readonly next: ReadingState; readonly superseded: ReadingState }
  | { readonly _tag: "Refresh"; readonly next: ReadingState }
  | { readonly _tag: "Keep"; readonly reason: "Replay" | "SensorBeatsManual" | "OlderEvent" }

/**
 * The conflict rule of the design, as a pure function. The SQL upsert of the
 * readings store implements the same rule; the property tests pin this one and
 * the store's contract suite checks the SQL against it.
 *
 * - nothing stored: insert at version 1;
 * - identical content (value, source and sensor limit: a replay): content and version unchanged; when the
 *   event is newer than the one stored, its id is kept (`Refresh`), so the
 *   value of the newest event wins whatever order events arrive in;
 * - stored MANUAL, incoming SENSOR: the sensor value replaces it;
 * - stored SENSOR, incoming MANUAL: keep the sensor value;
 * - same source, other value: the later event wins, so a redelivered older
 *   event never replaces a newer value.
 *
 * "Later" is the order of first appends to the events log (`isLaterEvent`), not
 * any clock: two receivers whose clocks disagree cannot make the older of two
 * values win.
 */
export const applyConflictRule = (stored: ReadingState | undefined, incoming: ReadingCandidate): ConflictOutcome => {
  if (stored === undefined) {
    return { _tag: "Insert", next: toState(incoming, 1) }
  }
  if (
    stored.glucose_value === incoming.glucose_value &&
    stored.source === incoming.source &&
    stored.sensor_limit === incoming.sensor_limit
  ) {
    return isLaterEvent(incoming, stored)
      ? { _tag: "Refresh", next: { ...stored, event_id: incoming.event_id, position: incoming.position } }
      : { _tag: "Keep", reason: "Replay" }
  }
  if (stored.source === "SENSOR" && incoming.source === "MANUAL") {
    return { _tag: "Keep", reason: "SensorBeatsManual" }
  }
  if (stored.source === incoming.source && !isLaterEvent(incoming, stored)) {
    return { _tag: "Keep", reason: "OlderEvent" }
  }
  return { _tag: "Replace", next: toState(incoming, stored.version + 1), superseded: stored }
}

/**
 * Whether `incoming` was accepted after `stored`: by first-append offset when both were appended to
 * the same partition (always, for one sensor, while the partition count of the events topic stays
 * what it was); otherwise (a reading stored before positions were kept) by the time-ordered event id.
 * The SQL upsert of the readings store implements the same comparison.
 */
export const isLaterEvent = (
  incoming: { readonly event_id: string; readonly position?: EventPosition | undefined },
  stored: { readonly event_id: string; readonly position?: EventPosition | undefined }
): boolean =>
  incoming.position !== undefined &&
  stored.position !== undefined &&
  incoming.position.partition === stored.position.partition
    ? incoming.position.offset > stored.position.offset
    : incoming.event_id > stored.event_id

const toState = (candidate: ReadingCandidate, version: number): ReadingState => ({
  sensor_id: candidate.sensor_id,
  timestamp: candidate.timestamp,
  glucose_value: candidate.glucose_value,
  source: candidate.source,
  ...(candidate.sensor_limit === undefined ? {} : { sensor_limit: candidate.sensor_limit }),
  event_id: candidate.event_id,
  position: candidate.position,
  version
})
