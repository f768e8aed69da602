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
  type DueDay,
  type ReadingRecord
} from "@dexmon/ports"
import {
  Clock,
  Config,
  Context,
  Effect,
  Layer,
  Option,
  Predicate,
  Result,
  Schedule,
  Schema,
  Semaphore,
  Stream
} from "effect"
import { dayStart, manifestKey, nextDayStart, objectKey } from "./ArchiveLayout.ts"
import { applyLateEvents } from "./LateEvents.ts"
import { type ArchiveFormatError, checksumOf, decodeReadings, encodeReadings } from "./ReadingsParquet.ts"

/**
 * `DEXMON_ARCHIVE_*`: where objects go, how big they get, how many are in flight, how many share a ledger
 * transaction.
 */
export const ArchiverConfig = Config.all({
  prefix: Config.String("DEXMON_ARCHIVE_PREFIX").pipe(Config.withDefault("readings")),
  maxRowsPerObject: Config.Int("DEXMON_ARCHIVE_OBJECT_ROWS").pipe(Config.withDefault(50_000)),
  concurrency: Config.Int("DEXMON_ARCHIVE_CONCURRENCY").pipe(Config.withDefault(8)),
  groupObjects: Config.Int("DEXMON_ARCHIVE_GROUP_OBJECTS").pipe(Config.withDefault(100))
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

interface GroupResult {
  readonly rows: number
  readonly objects: number
  readonly bytes: number
  readonly conflicts: number
}
const noResult: GroupResult = { rows: 0, objects: 0, bytes: 0, conflicts: 0 }
const addResults = (a: GroupResult, b: GroupResult): GroupResult => ({
  rows: a.rows + b.rows,
  objects: a.objects + b.objects,
  bytes: a.bytes + b.bytes,
  conflicts: a.conflicts + b.conflicts
})

const DAYS_PER_PAGE = 5_000

/**
 * Groups whose ledger work and S3 work overlap: while one group's rows are read or its objects begun or
 * committed, the other's objects are written and read back.
 */
const GROUPS_IN_FLIGHT = 2

/** Due (user, day) pairs of one UTC day archived together: read in one query, begun and committed in one transaction each. */
export interface DueGroup {
  readonly day: string
  readonly due: ReadonlyArray<DueDay>
  readonly rows: number
}

/**
 * Packs due (user, day) pairs, in the order they come (by day, then user), into groups of one UTC day
 * with at most `maxPairs` pairs and at most `maxRows` readings in all, so a group's rows fit in memory
 * at once. A pair with more than `maxRows` readings is a group of its own.
 */
export const groupDueDays =
  (limits: { readonly maxPairs: number; readonly maxRows: number }) =>
  <E, R>(self: Stream.Stream<DueDay, E, R>): Stream.Stream<DueGroup, E, R> =>
    Stream.mapAccum(
      self,
      (): DueGroup | undefined => undefined,
      (open, due): readonly [DueGroup | undefined, ReadonlyArray<DueGroup>] => {
        const fits =
          open !== undefined &&
          open.day === due.day &&
          open.due.length < limits.maxPairs &&
          open.rows + due.rows <= limits.maxRows
        if (fits) return [{ day: open.day, due: [...open.due, due], rows: open.rows + due.rows }, []]
        return [{ day: due.day, due: [due], rows: due.rows }, open === undefined ? [] : [open]]
      },
      { onHalt: (open) => (open === undefined ? [] : [open]) }
    )

/** Rows in (user, timestamp, sensor) order cut into each user's chunks of at most `limit`, in order. */
const chunksByUser = (rows: ReadonlyArray<ReadingRecord>, limit: number): Array<ReadonlyArray<ReadingRecord>> => {
  const chunks: Array<ReadonlyArray<ReadingRecord>> = []
  let start = 0
  for (let i = 1; i <= rows.length; i++) {
    if (i === rows.length || rows[i]!.user_id !== rows[start]!.user_id || i - start === limit) {
      chunks.push(rows.slice(start, i))
      start = i
    }
  }
  return chunks
}

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
 * only then does a transaction remove the rows from the hot store and commit
 * the object. A crash leaves at most pending objects, which the next run
 * removes first; so every reading ends in exactly one place.
 *
 * The ledger's round trips are paid per group of objects, not per object
 * (`groupDueDays`): a group's rows are read in one query, its objects begun in
 * one transaction and committed in another, each object on its own terms (an
 * object whose check failed or whose rows changed stays out, its rows hot).
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
    const back = yield* store.get(key).pipe(retryTransient)
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
   * Writes and reads back an object begun in `state`; a pending object that fails its check is removed.
   * Answers the object's size.
   */
  const putVerified = Effect.fnUntraced(function* (
    lease: ArchiverLease,
    object: ArchivedObject,
    rows: ReadonlyArray<ReadingRecord>,
    state: "pending" | "committed"
  ) {
    const bytes = yield* encodeReadings(rows)
    yield* store.put(object.key, bytes).pipe(Metrics.timeStoreWrite("archive"), retryTransient)
    yield* verify(object.key, rows, object.checksum).pipe(
      Effect.tapError(() => (state === "pending" ? discard(lease, object.key) : Effect.void))
    )
    return bytes.byteLength
  })

  /**
   * Begins, writes and reads back an object; a pending object that fails its check is removed. Answers
   * whether the key was new (`pending`) or already committed (the same rows, archived before).
   */
  const writeVerified = Effect.fnUntraced(function* (
    lease: ArchiverLease,
    object: ArchivedObject,
    rows: ReadonlyArray<ReadingRecord>
  ) {
    const state = yield* ledger.begin(lease, object).pipe(retryTransient)
    yield* putVerified(lease, object, rows, state)
    return { state }
  })

  /**
   * Archives a group of chunks of one day: one ledger transaction begins them all, their objects are
   * written and read back `config.concurrency` at a time (across the groups in flight), and one
   * transaction commits the verified ones, removing their rows from the hot store. An object that failed
   * its check, or whose rows changed meanwhile, commits nothing and its rows stay hot; the others commit.
   * A failure other than a changed row then fails the run, as before groups.
   */
  const archiveChunks = Effect.fn("Archiver.archiveChunks")(function* (
    lease: ArchiverLease,
    inFlight: Semaphore.Semaphore,
    day: string,
    chunks: ReadonlyArray<ReadonlyArray<ReadingRecord>>
  ) {
    if (chunks.length === 0) return noResult
    const entries = chunks.map((rows) => ({ object: describe(day, rows), rows }))
    yield* Effect.annotateCurrentSpan({ day, objects: entries.length })
    const states = yield* ledger
      .beginGroup(
        lease,
        entries.map((entry) => entry.object)
      )
      .pipe(retryTransient)
    const outcomes = yield* Effect.forEach(
      entries,
      (entry, i) => inFlight.withPermit(putVerified(lease, entry.object, entry.rows, states[i]!)).pipe(Effect.result),
      { concurrency: "unbounded" }
    )
    const verified = entries.flatMap((entry, i) => {
      const outcome = outcomes[i]!
      return Result.isSuccess(outcome) ? [{ ...entry, state: states[i]!, bytes: outcome.success }] : []
    })
    const { committed, conflicts } =
      verified.length === 0
        ? { committed: [], conflicts: [] }
        : yield* ledger.commitGroup(lease, verified).pipe(retryTransient)
    for (const conflict of conflicts) {
      yield* Effect.logWarning("rows changed while they were archived; they stay hot for the next run", conflict)
      // A key committed earlier holds the same rows from an earlier run: it must stay.
      if (verified.find((entry) => entry.object.key === conflict.key)?.state === "pending") {
        yield* discard(lease, conflict.key)
      }
    }
    const done = new Set(committed)
    const result = verified
      .filter((entry) => done.has(entry.object.key))
      .reduce(
        (sum, entry) => addResults(sum, { rows: entry.rows.length, objects: 1, bytes: entry.bytes, conflicts: 0 }),
        { ...noResult, conflicts: conflicts.length }
      )
    Metrics.archivedRows.inc(result.rows)
    const failure = outcomes.find(Result.isFailure)
    if (failure !== undefined) return yield* Effect.fail(failure.failure)
    return result
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

  /**
   * Every due reading of a group: one read for the group's users, cut into each user's chunks. A pair too
   * large for one read is read in chunks of `maxRowsPerObject`, each archived before the next is read.
   */
  const archiveGroup = Effect.fnUntraced(function* (
    lease: ArchiverLease,
    inFlight: Semaphore.Semaphore,
    group: DueGroup,
    cutoff: number
  ) {
    const from = dayStart(group.day)
    const to = Math.min(nextDayStart(group.day), cutoff)
    const [only] = group.due
    if (group.due.length > 1 || only === undefined || only.rows <= config.maxRowsPerObject) {
      const rows = yield* ledger
        .readUsers({ user_ids: group.due.map((due) => due.user_id), from, to })
        .pipe(retryTransient)
      return yield* archiveChunks(lease, inFlight, group.day, chunksByUser(rows, config.maxRowsPerObject))
    }
    let totals = noResult
    let after: readonly [number, ReadingRecord["sensor_id"]] | undefined
    for (;;) {
      const rows = yield* ledger
        .readChunk({ user_id: only.user_id, from, to, limit: config.maxRowsPerObject, after })
        .pipe(retryTransient)
      if (rows.length === 0) break
      totals = addResults(totals, yield* archiveChunks(lease, inFlight, group.day, [rows]))
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
        Effect.map(
          (page) =>
            [
              page,
              page.length === DAYS_PER_PAGE ? Option.some<ArchivableDay | undefined>(page.at(-1)) : Option.none()
            ] as const
        )
      )
    )

  const runOnce = ledger
    .exclusive(
      Effect.fnUntraced(function* (lease) {
        const recovered = yield* recoverPending(lease)
        const cutoff = (yield* Clock.currentTimeMillis) - retention.millis
        const inFlight = yield* Semaphore.make(config.concurrency)
        const totals = yield* dueDays(cutoff).pipe(
          groupDueDays({ maxPairs: config.groupObjects, maxRows: config.maxRowsPerObject }),
          Stream.mapEffect((group) => archiveGroup(lease, inFlight, group, cutoff), { concurrency: GROUPS_IN_FLIGHT }),
          Stream.runFold(() => noResult, addResults)
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
