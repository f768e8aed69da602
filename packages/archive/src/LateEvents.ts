import { applyConflictRule, computeEtag, type EventId, isLaterEvent } from "@dexmon/domain"
import type { LateEvent, ReadingRecord } from "@dexmon/ports"

/** What the late events did, by the conflict rule's outcome: a metric's labels. */
export interface LateOutcomes {
  readonly inserted: number
  readonly replaced: number
  readonly refreshed: number
  readonly kept: number
}

/** Archived rows with late events applied. */
export interface LateOverlay {
  /** Every key once, in (timestamp, sensor) order. */
  readonly rows: ReadonlyArray<ReadingRecord>
  /** The values the events replaced, each with the event that replaced it. */
  readonly superseded: ReadonlyArray<{ readonly record: ReadingRecord; readonly by: EventId }>
  readonly outcomes: LateOutcomes
  /** Whether any row differs from the archived one (a refresh changes only the event kept). */
  readonly changed: boolean
}

const keyOf = (row: { readonly sensor_id: string; readonly timestamp: number }) =>
  `${row.sensor_id}\u0000${row.timestamp}`

export const byPosition = (
  a: { readonly timestamp: number; readonly sensor_id: string },
  b: { readonly timestamp: number; readonly sensor_id: string }
) => a.timestamp - b.timestamp || (a.sensor_id < b.sensor_id ? -1 : a.sensor_id > b.sensor_id ? 1 : 0)

/** Per key, the order the events were first appended to the log (`isLaterEvent`): earlier first. */
const inLogOrder = (a: LateEvent, b: LateEvent) => (isLaterEvent(a, b) ? 1 : isLaterEvent(b, a) ? -1 : 0)

/**
 * Applies late events to archived rows with the domain's conflict rule, per key in log order, as the hot
 * store's upsert would have applied them had they come in time: the one rule behind both the archiver's
 * fold (which writes the result) and the read path (which shows it until the fold), so a key reads the
 * same before and after its fold. An event creating a key takes the row id and time reserved when it was
 * queued; a replacement keeps the row's id and creation time and bumps its version.
 */
export const applyLateEvents = (
  archived: ReadonlyArray<ReadingRecord>,
  late: ReadonlyArray<LateEvent>
): LateOverlay => {
  const rows = new Map(archived.map((row) => [keyOf(row), row]))
  const superseded: Array<{ readonly record: ReadingRecord; readonly by: EventId }> = []
  const outcomes = { inserted: 0, replaced: 0, refreshed: 0, kept: 0 }
  for (const event of [...late].sort((a, b) => byPosition(a, b) || inLogOrder(a, b))) {
    const key = keyOf(event)
    const stored = rows.get(key)
    // Only the owner's events touch a reading, as in the hot store.
    if (stored !== undefined && stored.user_id !== event.user_id) {
      outcomes.kept++
      continue
    }
    const outcome = applyConflictRule(stored, event)
    switch (outcome._tag) {
      case "Insert":
        outcomes.inserted++
        rows.set(key, {
          id: event.id,
          sensor_id: event.sensor_id,
          user_id: event.user_id,
          timestamp: event.timestamp,
          glucose_value: event.glucose_value,
          source: event.source,
          ...(event.sensor_limit === undefined ? {} : { sensor_limit: event.sensor_limit }),
          version: 1,
          etag: computeEtag(event, 1),
          created_at: event.received_at,
          updated_at: event.received_at,
          event_id: event.event_id,
          position: event.position
        })
        break
      case "Replace": {
        outcomes.replaced++
        superseded.push({ record: stored!, by: event.event_id })
        const { sensor_limit: _replaced, ...unflagged } = stored!
        rows.set(key, {
          ...unflagged,
          glucose_value: event.glucose_value,
          source: event.source,
          ...(event.sensor_limit === undefined ? {} : { sensor_limit: event.sensor_limit }),
          version: outcome.next.version,
          etag: computeEtag(event, outcome.next.version),
          updated_at: event.received_at,
          event_id: event.event_id,
          position: event.position
        })
        break
      }
      case "Refresh":
        outcomes.refreshed++
        rows.set(key, { ...stored!, event_id: event.event_id, position: event.position })
        break
      case "Keep":
        outcomes.kept++
    }
  }
  return {
    rows: [...rows.values()].sort(byPosition),
    superseded,
    outcomes,
    changed: outcomes.inserted + outcomes.replaced + outcomes.refreshed > 0
  }
}
