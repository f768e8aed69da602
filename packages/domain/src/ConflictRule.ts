import type { ReadingCandidate, ReadingState } from "./Reading.ts"

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
 * - identical content (a replay): content and version unchanged; when the
 *   event is newer than the one stored, its id is kept (`Refresh`), so the
 *   value of the newest event wins whatever order events arrive in;
 * - stored MANUAL, incoming SENSOR: the sensor value replaces it;
 * - stored SENSOR, incoming MANUAL: keep the sensor value;
 * - same source, other value: the event with the larger (time-ordered) id wins,
 *   so a redelivered older event never replaces a newer value.
 */
export const applyConflictRule = (stored: ReadingState | undefined, incoming: ReadingCandidate): ConflictOutcome => {
  if (stored === undefined) {
    return { _tag: "Insert", next: toState(incoming, 1) }
  }
  if (stored.glucose_value === incoming.glucose_value && stored.source === incoming.source) {
    return incoming.event_id > stored.event_id
      ? { _tag: "Refresh", next: { ...stored, event_id: incoming.event_id } }
      : { _tag: "Keep", reason: "Replay" }
  }
  if (stored.source === "SENSOR" && incoming.source === "MANUAL") {
    return { _tag: "Keep", reason: "SensorBeatsManual" }
  }
  if (stored.source === incoming.source && incoming.event_id <= stored.event_id) {
    return { _tag: "Keep", reason: "OlderEvent" }
  }
  return { _tag: "Replace", next: toState(incoming, stored.version + 1), superseded: stored }
}

const toState = (candidate: ReadingCandidate, version: number): ReadingState => ({
  sensor_id: candidate.sensor_id,
  timestamp: candidate.timestamp,
  glucose_value: candidate.glucose_value,
  source: candidate.source,
  event_id: candidate.event_id,
  version
})
