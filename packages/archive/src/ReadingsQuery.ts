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
import { type ArchiveFormatError, decodeReadings } from "./ReadingsParquet.ts"

export type ReadingsQueryError =
  | ReadingStoreError
  | ArchiveLedgerError
  | ArchiveStoreError
  | ArchiveFormatError
  | InvalidCursor

/** Objects are immutable and named by content, so a decoded object can be kept as long as memory allows. */
const CACHED_OBJECTS = 64

const byPosition = (a: { timestamp: number; sensor_id: string }, b: { timestamp: number; sensor_id: string }) =>
  a.timestamp - b.timestamp || (a.sensor_id < b.sensor_id ? -1 : a.sensor_id > b.sensor_id ? 1 : 0)

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
 * its object), so merging never repeats a reading.
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

      const rowsOf = Effect.fnUntraced(function* (object: ArchivedObject) {
        const cached = cache.get(object.key)
        if (cached !== undefined) return cached
        const bytes = yield* store.get(object.key)
        // A committed object that is gone is a broken archive, not an empty one.
        if (bytes === undefined) return yield* Effect.die(new Error(`archive object ${object.key} is missing`))
        const rows = yield* decodeReadings(bytes)
        if (cache.size >= CACHED_OBJECTS) cache.delete(cache.keys().next().value!)
        cache.set(object.key, rows)
        return rows
      })

      const list = Effect.fn("ReadingsQuery.list")(function* (query: ReadingQuery) {
        const hotPage = yield* hot.list(query)
        const after = query.cursor === undefined ? undefined : yield* decodeCursor(query.cursor, ["number", "string"])
        const start = after === undefined ? query.from : Math.max(query.from, after[0])
        const objects = yield* ledger.objectsOverlapping(query.user_id, start, query.to)
        if (objects.length === 0) return hotPage

        // Objects in order of their first reading: once `limit + 1` archived rows are held and the next
        // object starts after the last of them, no later object can hold a row of this page.
        const archived: Array<ReadingRecord> = []
        for (const object of objects) {
          if (archived.length > query.limit && object.first_timestamp > archived[query.limit]!.timestamp) break
          for (const row of yield* rowsOf(object)) {
            if (row.timestamp < query.from || row.timestamp >= query.to) continue
            if (query.sensor_id !== undefined && row.sensor_id !== query.sensor_id) continue
            if (after !== undefined && byPosition(row, { timestamp: after[0], sensor_id: after[1] }) <= 0) continue
            archived.push(row)
          }
          archived.sort(byPosition)
          archived.length = Math.min(archived.length, query.limit + 1)
        }

        const merged = [...hotPage.items, ...archived.map(toReading)].sort(byPosition)
        const items = merged.slice(0, query.limit)
        const more = merged.length > query.limit || hotPage.next_cursor !== null
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
