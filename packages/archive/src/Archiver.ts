import { HotRetention } from "@dexmon/domain"
import { Metrics } from "@dexmon/observability"
import {
  type ArchivableDay,
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

  /** Archives one chunk; the rows leave the hot store only once their object is verified. */
  const archiveChunk = Effect.fn("Archiver.archiveChunk")(function* (
    lease: ArchiverLease,
    day: string,
    rows: ReadonlyArray<ReadingRecord>
  ) {
    const checksum = checksumOf(rows)
    const first = rows[0]!
    const object: ArchivedObject = {
      key: objectKey(config.prefix, day, first.user_id, checksum),
      day,
      user_id: first.user_id,
      row_count: rows.length,
      checksum,
      first_timestamp: first.timestamp,
      last_timestamp: rows[rows.length - 1]!.timestamp
    }
    yield* Effect.annotateCurrentSpan({ key: object.key, rows: rows.length })
    const bytes = encodeReadings(rows)
    const state = yield* ledger.begin(lease, object).pipe(retryTransient)
    yield* store.put(object.key, bytes).pipe(Metrics.timeStoreWrite("archive"), retryTransient)
    yield* verify(object.key, rows, checksum).pipe(
      Effect.tapError(() => (state === "pending" ? discard(lease, object.key) : Effect.void))
    )
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
          last_timestamp: new Date(object.last_timestamp).toISOString()
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
        const manifests = yield* writeManifests(lease)
        const droppedPartitions = yield* ledger.dropEmptyPartitions(cutoff)
        const summary: ArchiveRunSummary = { cutoff, ...totals, recovered, manifests, droppedPartitions }
        yield* Effect.logInfo("archive run finished", {
          cutoff: new Date(cutoff).toISOString(),
          ...totals,
          recovered,
          manifests,
          droppedPartitions
        })
        return summary
      })
    )
    .pipe(Effect.withSpan("Archiver.runOnce"))

  return Archiver.of({ runOnce })
})
