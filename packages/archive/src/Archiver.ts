import { HotRetention } from "@dexmon/domain"
import { Metrics } from "@dexmon/observability"
import {
  type ArchivableDay,
  type ArchiveConflict,
  type ArchivedObject,
  ArchiveLedger,
  type ArchiveLedgerError,
  type ArchiverBusy,
  type ArchiverLease,
  type ArchiverLeaseLost,
  ArchiveStore,
  type ArchiveStoreError,
  type ReadingRecord
} from "@dexmon/ports"
import { Clock, Config, Context, Effect, Layer, Option, Predicate, Schedule, Schema, Stream } from "effect"
import { dayStart, manifestKey, nextDayStart, objectKey } from "./ArchiveLayout.ts"
import { applyLateEvents } from "./LateEvents.ts"
import { type ArchiveFormatError, checksumOf, decodeReadings, encodeReadings } from "./ReadingsParquet.ts"

/** `DEXMON_ARCHIVE_*`: where objects go, how big they get, how many are in flight. */
export const ArchiverConfig = Config.all({
  prefix: Config.String("DEXMON_ARCHIVE_PREFIX").pipe(Config.withDefault("readings")),
  maxRowsPerObject: Config.Int("DEXMON_ARCHIVE_OBJECT_ROWS").pipe(Config.withDefault(50_000)),
  concurrency: Config.Int("DEXMON_ARCHIVE_CONCURRENCY").pipe(Config.withDefault(4))
})
export type ArchiverConfig = Config.Success<typeof ArchiverConfig>

/** An object read back did not hold the rows written: it is removed and nothing leaves the hot store. */
export class ArchiveVerificationFailed extends Schema.TaggedError<ArchiveVerificationFailed>()(
  "ArchiveVerificationFailed",
  { key: Schema.String, message: Schema.String }
) {}

/** What one run did. */
export interface ArchiveRunSummary {
  /** Readings before this instant (epoch ms) were due. */
  readonly cutoff: number
  readonly rows: number
  readonly objects: number
  readonly bytes: number
  /** Chunks left in the hot store because a row changed while they were archived; the next run takes them. */
  readonly conflicts: number
  /** Objects of an interrupted earlier run, removed before this run wrote anything. */
  readonly recovered: number
  readonly manifests: number
  readonly droppedPartitions: ReadonlyArray<string>
  /** Late events folded into the archive (whatever the conflict rule made of them). */
  readonly lateEvents: number
  /** Objects the folds replaced, and removed. */
  readonly replacedObjects: number
}

interface ChunkResult {
  readonly rows: number
  readonly bytes: number
  readonly conflict: boolean
}

const DAYS_PER_PAGE = 500

/** Failures of S3 or the database that trying again can cure are retried a few times before the run fails. */
const retryTransient = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.retry(self, {
    schedule: Schedule.exponential("200 millis").pipe(Schedule.upTo({ times: 5 })),
    while: (error) => Predicate.hasProperty(error, "transient") && error.transient === true
  })

/**
 * Moves readings older than the hot retention from the readings store to the
 * archive store. Per chunk of at most `maxRowsPerObject` readings of one user
 * and one UTC day: the ledger records the object as pending, the object is
 * written, read back and checked (row count and checksum of every row), and
 * only then does one transaction remove the rows from the hot store and commit
 * the object. A crash leaves at most pending objects, which the next run
 * removes first; so every reading ends in exactly one place.
 *
 * The run holds the ledger's lease, and every change it makes to the ledger is
 * fenced by the lease's token: a run whose lock was lost (its connection died)
 * and taken by a second run fails with `ArchiverLeaseLost` at its next ledger
 * write, and commits nothing, forgets nothing and removes nothing after that.
 * Objects are removed only after the ledger confirmed the lease, and before the
 * fenced write that forgets them, so a stale run cannot remove what a newer run
 * verified and is about to commit.
 *
 * After the due days, each run folds the late events queued for archived days
 * (`foldDay`): the day's objects are replaced by objects with the events applied.
 */
export class Archiver extends Context.Service<
  Archiver,
  {
    /**
     * One archiving pass; fails with `ArchiverBusy` if another run holds the lock, and with
     * `ArchiverLeaseLost` if another run took it while this one ran.
     */
    readonly runOnce: Effect.Effect<
      ArchiveRunSummary,
      | ArchiverBusy
      | ArchiverLeaseLost
      | ArchiveLedgerError
      | ArchiveStoreError
      | ArchiveFormatError
      | ArchiveVerificationFailed
    >
  }
>()("dexmon/archive/Archiver") {
  static readonly layer = Layer.effect(
    Archiver,
    Effect.gen(function* () {
      const config = yield* ArchiverConfig
      return yield* makeArchiver(config)
    })
  )
}

export const makeArchiver = Effect.fnUntraced(function* (config: ArchiverConfig) {
  const ledger = yield* ArchiveLedger
  const store = yield* ArchiveStore
  const retention = yield* HotRetention

  const recoverPending = Effect.fnUntraced(function* (lease: ArchiverLease) {
    const leftovers = yield* ledger.pending
    for (const object of leftovers) yield* discard(lease, object.key)
    if (leftovers.length > 0) {
      yield* Effect.logWarning(`removed ${leftovers.length} objects an interrupted archiver run left uncommitted`)
    }
    // Objects a fold replaced whose run stopped before removing them: committed no more, read by no one.
    for (const object of yield* ledger.retired) yield* discard(lease, object.key)
    return leftovers.length
  })

  const verify = Effect.fnUntraced(function* (key: string, rows: ReadonlyArray<ReadingRecord>, checksum: string) {
    const back = yield* store.get(key)
    if (back === undefined) {
      return yield* new ArchiveVerificationFailed({ key, message: "the object is missing right after it was written" })
    }
    const decoded = yield* decodeReadings(back)
    if (decoded.length !== rows.length || checksumOf(decoded) !== checksum) {
      return yield* new ArchiveVerificationFailed({
        key,
        message: `read back ${decoded.length} rows (checksum ${checksumOf(decoded).slice(0, 12)}), wrote ${rows.length} (${checksum.slice(0, 12)})`
      })
    }
  })

  /** The object described by `rows`, as the ledger records it. */
  const describe = (day: string, rows: ReadonlyArray<ReadingRecord>): ArchivedObject => {
    const checksum = checksumOf(rows)
    const first = rows[0]!
    return {
      key: objectKey(config.prefix, day, first.user_id, checksum),
      day,
      user_id: first.user_id,
      row_count: rows.length,
      checksum,
      first_timestamp: first.timestamp,
      last_timestamp: rows[rows.length - 1]!.timestamp,
      sensor_ids: [...new Set(rows.map((row) => row.sensor_id))].sort()
    }
  }

  /**
   * Begins, writes and reads back an object; a pending object that fails its check is removed. Answers
   * whether the key was new (`pending`) or already committed (the same rows, archived before).
   */
  const writeVerified = Effect.fnUntraced(function* (
    lease: ArchiverLease,
    object: ArchivedObject,
    rows: ReadonlyArray<ReadingRecord>
  ) {
    const bytes = encodeReadings(rows)
    const state = yield* ledger.begin(lease, object).pipe(retryTransient)
    yield* store.put(object.key, bytes).pipe(Metrics.timeStoreWrite("archive"), retryTransient)
    yield* verify(object.key, rows, object.checksum).pipe(
      Effect.tapError(() => (state === "pending" ? discard(lease, object.key) : Effect.void))
    )
    return { bytes, state }
  })

  /** Archives one chunk; the rows leave the hot store only once their object is verified. */
  const archiveChunk = Effect.fn("Archiver.archiveChunk")(function* (
    lease: ArchiverLease,
    day: string,
    rows: ReadonlyArray<ReadingRecord>
  ) {
    const object = describe(day, rows)
    yield* Effect.annotateCurrentSpan({ key: object.key, rows: rows.length })
    const { bytes, state } = yield* writeVerified(lease, object, rows)
    return yield* ledger.commit(lease, object, rows).pipe(
      retryTransient,
      Effect.tap(() => Effect.sync(() => Metrics.archivedRows.inc(rows.length))),
      Effect.as<ChunkResult>({ rows: rows.length, bytes: bytes.byteLength, conflict: false }),
      Effect.catchTag("ArchiveConflict", (conflict) =>
        Effect.gen(function* () {
          yield* Effect.logWarning("rows changed while they were archived; they stay hot for the next run", conflict)
          // A key committed earlier holds the same rows from an earlier run: it must stay.
          if (state === "pending") yield* discard(lease, object.key)
          return { rows: 0, bytes: 0, conflict: true } satisfies ChunkResult
        })
      )
    )
  })

  /**
   * Removes a pending object, then its entry. The lease is checked first: a run that lost it must not remove
   * an object, which may by now be the same key a newer run wrote and verified. The check and the removal
   * are not atomic (the store knows no token), but a newer run needs the whole lock-begin-write-verify
   * path between the two to be hurt; `forget` is fenced on its own.
   */
  const discard = (lease: ArchiverLease, key: string) =>
    ledger
      .checkLease(lease)
      .pipe(
        Effect.andThen(store.remove(key)),
        Effect.andThen(ledger.forget(lease, key)),
        retryTransient,
        Effect.withSpan("Archiver.discard")
      )

  /** Every due reading of one user and day, in chunks of bounded size, oldest first. */
  const archiveDay = Effect.fnUntraced(function* (lease: ArchiverLease, due: ArchivableDay, cutoff: number) {
    const from = dayStart(due.day)
    const to = Math.min(nextDayStart(due.day), cutoff)
    const totals = { rows: 0, objects: 0, bytes: 0, conflicts: 0 }
    let after: readonly [number, ReadingRecord["sensor_id"]] | undefined
    for (;;) {
      const rows = yield* ledger
        .readChunk({ user_id: due.user_id, from, to, limit: config.maxRowsPerObject, after })
        .pipe(retryTransient)
      if (rows.length === 0) break
      const result = yield* archiveChunk(lease, due.day, rows)
      totals.rows += result.rows
      totals.bytes += result.bytes
      totals.objects += result.conflict ? 0 : 1
      totals.conflicts += result.conflict ? 1 : 0
      if (rows.length < config.maxRowsPerObject) break
      const last = rows[rows.length - 1]!
      after = [last.timestamp, last.sensor_id]
    }
    return totals
  })

  /**
   * Folds the queued late events of one user and day into the archive: the day's objects read whole, the
   * events applied by the conflict rule (`applyLateEvents`, the read path's rule too), the result written
   * as new objects and verified, then one fenced ledger transaction commits them, retires the objects they
   * replace and removes the folded events from the queue. The replaced objects' bytes are removed only
   * after that commit. Events queued meanwhile stay queued for the next run. When the events change
   * nothing (a redelivery, an older value), no object is written: they only leave the queue.
   */
  const foldDay = Effect.fn("Archiver.foldDay")(function* (lease: ArchiverLease, due: ArchivableDay) {
    const none = { events: 0, replaced: 0, conflict: false }
    const late = yield* ledger.lateEvents(due.user_id, dayStart(due.day), nextDayStart(due.day)).pipe(retryTransient)
    if (late.length === 0) return none
    const objects = (yield* ledger
      .objectsOverlapping(due.user_id, dayStart(due.day), nextDayStart(due.day))
      .pipe(retryTransient)).filter((object) => object.day === due.day)
    const archived: Array<ReadingRecord> = []
    for (const object of objects) {
      const bytes = yield* store.get(object.key).pipe(retryTransient)
      if (bytes === undefined) return yield* Effect.die(new Error(`archive object ${object.key} is missing`))
      archived.push(...(yield* decodeReadings(bytes)))
    }
    const overlay = applyLateEvents(archived, late)
    const chunks: Array<ReadonlyArray<ReadingRecord>> = []
    if (overlay.changed) {
      for (let i = 0; i < overlay.rows.length; i += config.maxRowsPerObject) {
        chunks.push(overlay.rows.slice(i, i + config.maxRowsPerObject))
      }
    }
    const written: Array<{ readonly object: ArchivedObject; readonly state: "pending" | "committed" }> = []
    for (const rows of chunks) {
      const object = describe(due.day, rows)
      written.push({ object, state: (yield* writeVerified(lease, object, rows)).state })
    }
    const replacements = new Set(written.map(({ object }) => object.key))
    const retire = overlay.changed ? objects.map((object) => object.key) : []
    const committed = yield* ledger
      .fold(lease, {
        day: due.day,
        user_id: due.user_id,
        retire,
        objects: written.map(({ object }) => object),
        folded: late.map((event) => event.event_id),
        superseded: overlay.superseded
      })
      .pipe(
        retryTransient,
        Effect.as(true),
        Effect.catchTag("ArchiveConflict", (conflict: ArchiveConflict) =>
          Effect.gen(function* () {
            yield* Effect.logWarning("the day's objects changed while late events were folded", conflict)
            for (const { object, state } of written) if (state === "pending") yield* discard(lease, object.key)
            return false
          })
        )
      )
    if (!committed) return { ...none, conflict: true }
    const removed = retire.filter((key) => !replacements.has(key))
    for (const key of removed) yield* discard(lease, key)
    for (const [outcome, count] of Object.entries(overlay.outcomes)) Metrics.lateEvents.inc({ outcome }, count)
    yield* Effect.logInfo("late events folded into the archive", {
      day: due.day,
      user_id: due.user_id,
      ...overlay.outcomes,
      replaced_objects: removed.length
    })
    return { events: late.length, replaced: removed.length, conflict: false }
  })

  /** Rewrites the manifest of every day that gained objects; its content depends only on the ledger. */
  const writeManifests = Effect.fnUntraced(function* (lease: ArchiverLease) {
    const days = yield* ledger.unmanifestedDays
    for (const day of days) {
      const objects = yield* ledger.objectsOfDay(day)
      const manifest = {
        schema_version: 1,
        date: day,
        rows: objects.reduce((n, object) => n + object.row_count, 0),
        objects: objects.map((object) => ({
          key: object.key,
          user_id: object.user_id,
          rows: object.row_count,
          checksum: object.checksum,
          first_timestamp: new Date(object.first_timestamp).toISOString(),
          last_timestamp: new Date(object.last_timestamp).toISOString(),
          // Absent for objects archived before the ledger kept them: their Parquet statistics tell.
          ...(object.sensor_ids === undefined ? {} : { sensor_ids: object.sensor_ids })
        }))
      }
      // A stale run's manifest would list fewer objects than a newer run's: it must not overwrite it.
      yield* ledger.checkLease(lease)
      yield* store.put(manifestKey(config.prefix, day), new TextEncoder().encode(JSON.stringify(manifest, null, 2)))
      yield* ledger.markManifested(
        lease,
        day,
        objects.map((object) => object.key)
      )
    }
    return days.length
  })

  const dueDays = (cutoff: number) =>
    Stream.paginate(undefined as ArchivableDay | undefined, (after) =>
      ledger.archivableDays(cutoff, DAYS_PER_PAGE, after).pipe(
        retryTransient,
        Effect.map((page) => [page, page.length === DAYS_PER_PAGE ? Option.some(page.at(-1)) : Option.none()] as const)
      )
    )

  const runOnce = ledger
    .exclusive(
      Effect.fnUntraced(function* (lease) {
        const recovered = yield* recoverPending(lease)
        const cutoff = (yield* Clock.currentTimeMillis) - retention.millis
        const totals = yield* dueDays(cutoff).pipe(
          Stream.mapEffect((due) => archiveDay(lease, due, cutoff), { concurrency: config.concurrency }),
          Stream.runFold(
            () => ({ rows: 0, objects: 0, bytes: 0, conflicts: 0 }),
            (sum, day) => ({
              rows: sum.rows + day.rows,
              objects: sum.objects + day.objects,
              bytes: sum.bytes + day.bytes,
              conflicts: sum.conflicts + day.conflicts
            })
          )
        )
        // After the due days: a day archived just now may have gained late events already.
        const lateDays = yield* ledger.lateDays.pipe(retryTransient)
        const folds = yield* Effect.forEach(lateDays, (due) => foldDay(lease, due), {
          concurrency: config.concurrency
        })
        const lateEvents = folds.reduce((n, fold) => n + fold.events, 0)
        const replacedObjects = folds.reduce((n, fold) => n + fold.replaced, 0)
        Metrics.lateEventsPending.set(lateEvents)
        const conflicts = totals.conflicts + folds.filter((fold) => fold.conflict).length
        const manifests = yield* writeManifests(lease)
        const droppedPartitions = yield* ledger.dropEmptyPartitions(cutoff)
        const summary: ArchiveRunSummary = {
          cutoff,
          ...totals,
          conflicts,
          recovered,
          manifests,
          droppedPartitions,
          lateEvents,
          replacedObjects
        }
        yield* Effect.logInfo("archive run finished", {
          cutoff: new Date(cutoff).toISOString(),
          ...totals,
          conflicts,
          recovered,
          manifests,
          droppedPartitions,
          lateEvents,
          replacedObjects
        })
        return summary
      })
    )
    .pipe(Effect.withSpan("Archiver.runOnce"))

  return Archiver.of({ runOnce })
})
