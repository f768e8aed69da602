import { type InvalidCursor, Reading } from "@dexmon/domain"
import {
  type ArchivedObject,
  ArchiveLedger,
  ArchiveLedgerError,
  ArchiveStore,
  type ArchiveStoreError,
  decodeCursor,
  encodeCursor,
  type ReadingPage,
  type ReadingQuery,
  type ReadingRecord,
  ReadingStore,
  type ReadingStoreError,
  type ReadingSummary,
  type ReadingSummaryQuery
} from "@dexmon/ports"
import {
  joinSensorRuns,
  mergeTimeOfDayCounts,
  mergeValueCounts,
  type SensorRuns,
  SLOT_MS,
  sensorRunsOf,
  type TimeOfDayCounts,
  timeOfDayBinOf,
  valueCountsOf
} from "@dexmon/statistics"
import { Config, Context, Effect, Layer } from "effect"
import { applyLateEvents, byPosition } from "./LateEvents.ts"
import { type ArchiveFormatError, type RowFilter, readMatching } from "./ReadingsParquet.ts"

/**
 * `DEXMON_ARCHIVE_QUERY_OBJECTS`: at most this many archive objects are read for one page. A page
 * whose rows are not all found by then ends early, before the first object left unread, and its
 * cursor continues there.
 */
export const ReadingsQueryConfig = Config.all({
  maxObjectsPerPage: Config.Int("DEXMON_ARCHIVE_QUERY_OBJECTS").pipe(Config.withDefault(32))
})

export type ReadingsQueryError =
  | ReadingStoreError
  | ArchiveLedgerError
  | ArchiveStoreError
  | ArchiveFormatError
  | InvalidCursor

/** The UTC day of an instant, as the ledger names an object's day. */
const utcDayOf = (millis: number) => new Date(millis).toISOString().slice(0, 10)

/** Objects are immutable and named by content, so the rows read from one can be kept as long as memory allows. */
const CACHED_OBJECTS = 64

/** A fold may retire an object between listing and reading it: the page is read again, this many times at most. */
const ATTEMPTS = 3

/** Hot readings older than the archive's last (stragglers) are read in pages of this many. */
const STRAGGLER_PAGE = 1000

/** The summary of no readings. */
const emptySummary = (query: ReadingSummaryQuery): ReadingSummary => ({
  counts: [],
  by_time_of_day: Array.from({ length: (24 * 60) / query.bin_minutes }, () => []),
  slots: [],
  runs: new Map()
})

/** What a summary reads of an archived or straggling row. */
type FoldedRow = Pick<ReadingRecord, "timestamp" | "sensor_id" | "glucose_value" | "source">

const toReading = (record: ReadingRecord) =>
  new Reading({
    id: record.id,
    sensor_id: record.sensor_id,
    user_id: record.user_id,
    timestamp: record.timestamp,
    glucose_value: record.glucose_value,
    source: record.source,
    ...(record.sensor_limit === undefined ? {} : { sensor_limit: record.sensor_limit }),
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
 *
 * Reads are bounded by what the ledger and the objects' own statistics say, never by downloading to
 * find out: only objects whose time span overlaps the range (and, filtered by sensor, whose sensors
 * include it) are touched; of those, the Parquet footer is read first and only the row groups whose
 * min/max (timestamp, sensor) can match are fetched; and a page reads at most `maxObjectsPerPage`
 * objects.
 */
export class ReadingsQuery extends Context.Service<
  ReadingsQuery,
  {
    readonly list: (query: ReadingQuery) => Effect.Effect<ReadingPage, ReadingsQueryError>
    /**
     * The summary of the SENSOR readings in the range, hot and archived, combined exactly, in one pass over the
     * archive: the statistics and the AGP's profile by local time of day come from the same reading of the data.
     */
    readonly summarize: (
      query: ReadingSummaryQuery
    ) => Effect.Effect<ReadingSummary, Exclude<ReadingsQueryError, InvalidCursor>>
  }
>()("dexmon/archive/ReadingsQuery") {
  static readonly layer = Layer.effect(
    ReadingsQuery,
    Effect.gen(function* () {
      const { maxObjectsPerPage } = yield* ReadingsQueryConfig
      const hot = yield* ReadingStore
      const ledger = yield* ArchiveLedger
      const store = yield* ArchiveStore
      // Keyed by object and filter: what was read for one filter is a superset of its matches only.
      const cache = new Map<string, ReadonlyArray<ReadingRecord>>()

      /**
       * The rows of an object that may match `filter` (those of its row groups whose statistics can
       * match), or `undefined` if it is gone (a fold replaced it since the ledger was asked).
       */
      const rowsOf = Effect.fnUntraced(function* (object: ArchivedObject, filter: RowFilter) {
        const cacheKey = `${object.key}|${filter.from}|${filter.to}|${filter.sensor_id ?? ""}`
        const cached = cache.get(cacheKey)
        if (cached !== undefined) return cached
        const read = yield* readMatching((range) => store.getRange(object.key, range), filter)
        if (read === undefined) return undefined
        if (cache.size >= CACHED_OBJECTS) cache.delete(cache.keys().next().value!)
        cache.set(cacheKey, read.rows)
        return read.rows
      })

      /**
       * The archived rows of the page (at most `limit + 1`, with the late events applied), or `undefined`
       * when an object listed was gone by the time it was read. The late events are read before the
       * objects: a fold committing in between then shows its events twice, which the rule makes no-ops,
       * where the other order could show an old object without the events folded into its successor.
       * `bound`, when set, is the first instant of the first object left unread (the page's object budget
       * ran out): rows from it on are unknown, so the page must end before it.
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
        // Filtered by sensor, the ledger leaves out the objects it knows hold no reading of that sensor.
        const objects = yield* ledger.objectsOverlapping(query.user_id, start, query.to, query.sensor_id)
        if (objects.length === 0 && late.length === 0) return { rows: [], bound: undefined }

        // Objects in order of their first reading: once `limit + 1` archived rows are held and the next
        // object starts after the last of them, no later object can hold a row of this page.
        const filter: RowFilter = { from: start, to: query.to, sensor_id: query.sensor_id }
        const archived: Array<ReadingRecord> = []
        // The budget counts objects that begin after `start`: one that begins at or before it (the first
        // of a user's disjoint objects) is always read, and so is every object beginning at the same
        // instant as the last one read. So the first object left unread begins later than an object
        // read that began after `start`, and the next page's cursor (`bound - 1`) moves past `start`.
        let budgeted = 0
        let lastFirst = Number.NEGATIVE_INFINITY
        let unread: number | undefined
        for (const object of objects) {
          if (archived.length > query.limit && object.first_timestamp > archived[query.limit]!.timestamp) break
          if (budgeted >= maxObjectsPerPage && object.first_timestamp > start && object.first_timestamp > lastFirst) {
            unread = object.first_timestamp
            break
          }
          const rows = yield* rowsOf(object, filter)
          if (rows === undefined) return undefined
          if (object.first_timestamp > start) budgeted++
          lastFirst = object.first_timestamp
          for (const row of rows) if (inPage(row)) archived.push(row)
          archived.sort(byPosition)
          archived.length = Math.min(archived.length, query.limit + 1)
        }
        // Events past the last row held cannot reach this page, and their key's archived row may not be held.
        const last = archived.length > query.limit ? archived[query.limit] : undefined
        const held = late.filter(
          (event) =>
            (last === undefined || byPosition(event, last) <= 0) && (unread === undefined || event.timestamp < unread)
        )
        const overlay = applyLateEvents(archived, held)
        return { rows: overlay.rows.slice(0, query.limit + 1), bound: unread }
      })

      const list = Effect.fn("ReadingsQuery.list")(function* (query: ReadingQuery) {
        const after = query.cursor === undefined ? undefined : yield* decodeCursor(query.cursor, ["number", "string"])
        let archived: { readonly rows: ReadonlyArray<ReadingRecord>; readonly bound: number | undefined } | undefined
        let hotPage: ReadingPage | undefined
        for (let attempt = 1; archived === undefined; attempt++) {
          hotPage = yield* hot.list(query)
          archived = yield* archivedRows(query, after)
          if (archived === undefined && attempt === ATTEMPTS) {
            // A committed object that stays gone is a broken archive, not an empty one.
            return yield* Effect.die(new Error(`an archive object of ${query.user_id} is missing`))
          }
        }
        const { rows, bound } = archived
        if (rows.length === 0 && bound === undefined) return hotPage!

        // A chunk committed between the two reads puts its rows in both: the archived copy (read last) is kept.
        // With the object budget spent, rows from `bound` on (hot ones too) wait for the next page.
        const merged = [...rows.map(toReading), ...hotPage!.items]
          .sort(byPosition)
          .filter((row, i, all) => i === 0 || byPosition(all[i - 1]!, row) !== 0)
          .filter((row) => bound === undefined || row.timestamp < bound)
        const items = merged.slice(0, query.limit)
        const last = items[items.length - 1]
        if (bound !== undefined && last === undefined) {
          // Nothing before `bound` matches: the page is empty and the next one starts at `bound`. A
          // cursor names a position after which to go on; the sensor "" sorts before every sensor id,
          // and no reading at `bound - 1` matches (it would be in `merged`).
          return { items, next_cursor: encodeCursor([bound - 1, ""]) } satisfies ReadingPage
        }
        const more = merged.length > query.limit || hotPage!.next_cursor !== null || bound !== undefined
        return {
          items,
          next_cursor: more && last !== undefined ? encodeCursor([last.timestamp, last.sensor_id]) : null
        } satisfies ReadingPage
      })

      /** The objects' keys, to tell whether the ledger moved on between two reads. */
      const keysOf = (objects: ReadonlyArray<ArchivedObject>) => objects.map((object) => object.key).join("\n")

      /**
       * A part computed by the hot store joined with one folded here from the archived SENSOR rows in the range,
       * a UTC day at a time (an object holds one user's day; a day's late events are laid over its rows), so
       * memory holds one day's rows whatever the range. An archiver commit moves rows from the hot store to an
       * object in one transaction, so if the ledger's objects are the same before and after the hot part, no
       * commit fell in between and no reading is counted twice or missed; otherwise both are read again.
       *
       * `hotPart` is told the last archived instant in the range: a part that needs time order (runs) computes
       * the hot readings after it and hands back those at or before it (`stragglers`: a day the archive has no
       * object for, written after later days were archived, stays hot until the next archiver run), which are
       * folded into their days with the archived rows.
       */
      const hotAndArchived = Effect.fnUntraced(function* <A, P>(
        query: ReadingSummaryQuery,
        hotPart: (
          archivedThrough: number
        ) => Effect.Effect<{ readonly hot: A; readonly stragglers: ReadonlyArray<FoldedRow> }, ReadingStoreError>,
        archive: {
          readonly empty: () => P
          readonly addDay: (part: P, rows: ReadonlyArray<FoldedRow>) => P
          readonly join: (archived: P, hot: A) => A
        }
      ) {
        const inQuery = (row: { readonly timestamp: number; readonly sensor_id: string }) =>
          row.timestamp >= query.from &&
          row.timestamp < query.to &&
          (query.sensor_id === undefined || row.sensor_id === query.sensor_id)
        const filter: RowFilter = { from: query.from, to: query.to, sensor_id: query.sensor_id }
        for (let attempt = 1; ; attempt++) {
          const objects = yield* ledger.objectsOverlapping(query.user_id, query.from, query.to, query.sensor_id)
          // Before the hot part, so that the last archived instant counts the late events' too. One queued after
          // this read is not counted, as if it had come a moment later; a fold that takes events changes objects.
          const late = (yield* ledger.lateEvents(query.user_id, query.from, query.to)).filter(inQuery)
          let archivedThrough = Number.NEGATIVE_INFINITY
          for (const object of objects) archivedThrough = Math.max(archivedThrough, object.last_timestamp)
          for (const event of late) archivedThrough = Math.max(archivedThrough, event.timestamp)
          const { hot: hotResult, stragglers } = yield* hotPart(archivedThrough)
          const objectsAfter = yield* ledger.objectsOverlapping(query.user_id, query.from, query.to, query.sensor_id)
          if (keysOf(objects) !== keysOf(objectsAfter)) {
            // Archiver commits that keep landing between the reads: busy, not broken; the client may retry (503).
            if (attempt === ATTEMPTS) {
              return yield* new ArchiveLedgerError({
                operation: "summarize",
                message: `the archive of ${query.user_id} kept changing while it was read ${ATTEMPTS} times`,
                transient: true
              })
            }
            continue
          }
          if (objects.length === 0 && late.length === 0) return hotResult
          const objectsOfDay = Map.groupBy(objects, (object) => object.day)
          const lateOfDay = Map.groupBy(late, (event) => utcDayOf(event.timestamp))
          const straggling = Map.groupBy(stragglers, (row) => utcDayOf(row.timestamp))
          const days = new Set([...objectsOfDay.keys(), ...lateOfDay.keys(), ...straggling.keys()])
          let part = archive.empty()
          let gone = false
          for (const day of [...days].sort()) {
            const rows: Array<ReadingRecord> = []
            for (const object of objectsOfDay.get(day) ?? []) {
              const read = yield* rowsOf(object, filter)
              if (read === undefined) {
                gone = true
                break
              }
              for (const row of read) if (inQuery(row)) rows.push(row)
            }
            if (gone) break
            // The archiver keeps the hot and the archived rows disjoint, and a late event's key is never hot.
            const dayRows: Array<FoldedRow> = [...applyLateEvents(rows, lateOfDay.get(day) ?? []).rows]
            dayRows.push(...(straggling.get(day) ?? []))
            part = archive.addDay(part, dayRows.filter((row) => row.source === "SENSOR").sort(byPosition))
          }
          if (gone) {
            if (attempt === ATTEMPTS) {
              return yield* Effect.die(new Error(`an archive object of ${query.user_id} is missing`))
            }
            continue
          }
          return archive.join(part, hotResult)
        }
      })

      /**
       * The hot readings at or before `archivedThrough` (stragglers: usually none, and gone after the next archiver
       * run; held as the few fields a summary reads), a page at a time, and the summary of those after it, which
       * then follow every archived day.
       */
      const hotSummary = Effect.fnUntraced(function* (query: ReadingSummaryQuery, archivedThrough: number) {
        const stragglers: Array<FoldedRow> = []
        const until = Math.min(archivedThrough + 1, query.to)
        for (let cursor: string | undefined, more = until > query.from; more; ) {
          // The cursor is the store's own, from the page before.
          const page = yield* hot
            .list({ ...query, to: until, limit: STRAGGLER_PAGE, cursor })
            .pipe(Effect.catchTag("InvalidCursor", Effect.die))
          for (const { glucose_value, sensor_id, source, timestamp } of page.items) {
            if (source === "SENSOR") stragglers.push({ glucose_value, sensor_id, source, timestamp })
          }
          cursor = page.next_cursor ?? undefined
          more = cursor !== undefined
        }
        const summary =
          until >= query.to
            ? emptySummary(query)
            : yield* hot.summarize({ ...query, from: Math.max(query.from, until) })
        return { hot: summary, stragglers }
      })

      /**
       * Counts merge and slots are a union (the day the archiver's cutoff fell in is partly in each part); each
       * sensor's runs join in time order: the archived days', then the hot readings' after them. Archived rows are
       * binned by the same wall clock as the database's (`AT TIME ZONE`: the IANA data).
       */
      const summarize = Effect.fn("ReadingsQuery.summarize")(function* (query: ReadingSummaryQuery) {
        const bins = (24 * 60) / query.bin_minutes
        return yield* hotAndArchived(query, (archivedThrough) => hotSummary(query, archivedThrough), {
          empty: () => ({
            byTimeOfDay: [] as TimeOfDayCounts,
            slots: new Set<number>(),
            runs: new Map() as SensorRuns
          }),
          addDay: (part, rows) => {
            const values: Array<Array<number>> = Array.from({ length: bins }, () => [])
            for (const row of rows) {
              part.slots.add(Math.floor(row.timestamp / SLOT_MS))
              values[timeOfDayBinOf(row.timestamp, query.time_zone, query.bin_minutes)]!.push(row.glucose_value)
            }
            return {
              byTimeOfDay: mergeTimeOfDayCounts(bins, part.byTimeOfDay, values.map(valueCountsOf)),
              slots: part.slots,
              runs: joinSensorRuns(
                part.runs,
                sensorRunsOf(
                  rows.map((row) => ({ sensor_id: row.sensor_id, timestamp: row.timestamp, value: row.glucose_value }))
                )
              )
            }
          },
          join: (archived, hotPart): ReadingSummary => {
            for (const slot of hotPart.slots) archived.slots.add(slot)
            const byTimeOfDay = mergeTimeOfDayCounts(bins, archived.byTimeOfDay, hotPart.by_time_of_day)
            return {
              counts: mergeValueCounts(...byTimeOfDay),
              by_time_of_day: byTimeOfDay,
              slots: [...archived.slots].sort((a, b) => a - b),
              runs: joinSensorRuns(archived.runs, hotPart.runs)
            }
          }
        })
      })

      return ReadingsQuery.of({ list, summarize })
    })
  )
}
