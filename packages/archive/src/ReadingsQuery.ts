import { type InvalidCursor, Reading } from "@dexmon/domain"
import {
  type ArchivedObject,
  ArchiveLedger,
  type ArchiveLedgerError,
  ArchiveStore,
  type ArchiveStoreError,
  decodeCursor,
  encodeCursor,
  type ReadingPage,
  type ReadingQuery,
  type ReadingRecord,
  ReadingStore,
  type ReadingStoreError
} from "@dexmon/ports"
import { Context, Effect, Layer } from "effect"
import { applyLateEvents, byPosition } from "./LateEvents.ts"
import { type ArchiveFormatError, decodeReadings } from "./ReadingsParquet.ts"

export type ReadingsQueryError =
  | ReadingStoreError
  | ArchiveLedgerError
  | ArchiveStoreError
  | ArchiveFormatError
  | InvalidCursor

/** Objects are immutable and named by content, so a decoded object can be kept as long as memory allows. */
const CACHED_OBJECTS = 64

/** A fold may retire an object between listing and reading it: the page is read again, this many times at most. */
const ATTEMPTS = 3

const toReading = (record: ReadingRecord) =>
  new Reading({
    id: record.id,
    sensor_id: record.sensor_id,
    user_id: record.user_id,
    timestamp: record.timestamp,
    glucose_value: record.glucose_value,
    source: record.source,
    version: record.version,
    etag: record.etag,
    created_at: record.created_at,
    updated_at: record.updated_at
  })

/**
 * A user's readings over any range, hot or archived: the hot store's page
 * merged with the rows of the archive objects that overlap the range, under
 * the same keyset cursor `(timestamp, sensor_id)`. The archiver keeps the two
 * disjoint (a reading leaves the hot store in the transaction that commits
 * its object), so merging never repeats a reading. Late events queued for
 * archived days (never in the hot store either) are laid over the archived
 * rows with the conflict rule the archiver's fold applies, so each key is
 * returned once, with the value it will have once folded.
 */
export class ReadingsQuery extends Context.Service<
  ReadingsQuery,
  { readonly list: (query: ReadingQuery) => Effect.Effect<ReadingPage, ReadingsQueryError> }
>()("dexmon/archive/ReadingsQuery") {
  static readonly layer = Layer.effect(
    ReadingsQuery,
    Effect.gen(function* () {
      const hot = yield* ReadingStore
      const ledger = yield* ArchiveLedger
      const store = yield* ArchiveStore
      const cache = new Map<string, ReadonlyArray<ReadingRecord>>()

      /** An object's rows, or `undefined` if it is gone (a fold replaced it since the ledger was asked). */
      const rowsOf = Effect.fnUntraced(function* (object: ArchivedObject) {
        const cached = cache.get(object.key)
        if (cached !== undefined) return cached
        const bytes = yield* store.get(object.key)
        if (bytes === undefined) return undefined
        const rows = yield* decodeReadings(bytes)
        if (cache.size >= CACHED_OBJECTS) cache.delete(cache.keys().next().value!)
        cache.set(object.key, rows)
        return rows
      })

      /**
       * The archived rows of the page (at most `limit + 1`, with the late events applied), or `undefined`
       * when an object listed was gone by the time it was read. The late events are read before the
       * objects: a fold committing in between then shows its events twice, which the rule makes no-ops,
       * where the other order could show an old object without the events folded into its successor.
       */
      const archivedRows = Effect.fnUntraced(function* (
        query: ReadingQuery,
        after: readonly [number, string] | undefined
      ) {
        const start = after === undefined ? query.from : Math.max(query.from, after[0])
        const inPage = (row: { readonly timestamp: number; readonly sensor_id: string }) =>
          row.timestamp >= query.from &&
          row.timestamp < query.to &&
          (query.sensor_id === undefined || row.sensor_id === query.sensor_id) &&
          (after === undefined || byPosition(row, { timestamp: after[0], sensor_id: after[1] }) > 0)
        const late = (yield* ledger.lateEvents(query.user_id, start, query.to)).filter(inPage)
        const objects = yield* ledger.objectsOverlapping(query.user_id, start, query.to)
        if (objects.length === 0 && late.length === 0) return []

        // Objects in order of their first reading: once `limit + 1` archived rows are held and the next
        // object starts after the last of them, no later object can hold a row of this page.
        const archived: Array<ReadingRecord> = []
        for (const object of objects) {
          if (archived.length > query.limit && object.first_timestamp > archived[query.limit]!.timestamp) break
          const rows = yield* rowsOf(object)
          if (rows === undefined) return undefined
          for (const row of rows) if (inPage(row)) archived.push(row)
          archived.sort(byPosition)
          archived.length = Math.min(archived.length, query.limit + 1)
        }
        // Events past the last row held cannot reach this page, and their key's archived row may not be held.
        const bound = archived.length > query.limit ? archived[query.limit] : undefined
        const overlay = applyLateEvents(
          archived,
          bound === undefined ? late : late.filter((event) => byPosition(event, bound) <= 0)
        )
        return overlay.rows.slice(0, query.limit + 1)
      })

      const list = Effect.fn("ReadingsQuery.list")(function* (query: ReadingQuery) {
        const after = query.cursor === undefined ? undefined : yield* decodeCursor(query.cursor, ["number", "string"])
        let archived: ReadonlyArray<ReadingRecord> | undefined
        let hotPage: ReadingPage | undefined
        for (let attempt = 1; archived === undefined; attempt++) {
          hotPage = yield* hot.list(query)
          archived = yield* archivedRows(query, after)
          if (archived === undefined && attempt === ATTEMPTS) {
            // A committed object that stays gone is a broken archive, not an empty one.
            return yield* Effect.die(new Error(`an archive object of ${query.user_id} is missing`))
          }
        }
        if (archived.length === 0) return hotPage!

        // A chunk committed between the two reads puts its rows in both: the archived copy (read last) is kept.
        const merged = [...archived.map(toReading), ...hotPage!.items]
          .sort(byPosition)
          .filter((row, i, rows) => i === 0 || byPosition(rows[i - 1]!, row) !== 0)
        const items = merged.slice(0, query.limit)
        const more = merged.length > query.limit || hotPage!.next_cursor !== null
        const last = items[items.length - 1]
        return {
          items,
          next_cursor: more && last !== undefined ? encodeCursor([last.timestamp, last.sensor_id]) : null
        } satisfies ReadingPage
      })

      return ReadingsQuery.of({ list })
    })
  )
}
