import type { EventId, EventPosition, SensorId, SensorLimit, Source, UserId } from "@dexmon/domain"
import { Context, type Effect, Schema, type Scope } from "effect"
import { StoreFailureFields } from "../StoreFailure.ts"

/** A stored reading with every column, instants as epoch milliseconds: what an archive object holds per row. */
export interface ReadingRecord {
  readonly id: string
  readonly sensor_id: SensorId
  readonly user_id: UserId
  readonly timestamp: number
  readonly glucose_value: number
  readonly source: Source
  /** Only on a reading at the sensor's range (`LO`, `HI`). */
  readonly sensor_limit?: SensorLimit
  readonly version: number
  readonly etag: string
  readonly created_at: number
  readonly updated_at: number
  /** The event that wrote the current value, and where it was first appended: what the conflict rule compares. */
  readonly event_id: EventId
  readonly position?: EventPosition | undefined
}

/**
 * An event for a key of an archived (user, UTC day), kept out of the hot store (see `ArchiveLedger`):
 * queued by the readings store's upsert, shown over the archived rows by the read path, folded into
 * the day's objects by the archiver's next run.
 */
export interface LateEvent {
  readonly event_id: EventId
  readonly sensor_id: SensorId
  readonly user_id: UserId
  readonly timestamp: number
  readonly glucose_value: number
  readonly source: Source
  readonly sensor_limit?: SensorLimit
  readonly position?: EventPosition | undefined
  /** A row id reserved when the event was queued: the reading's id if the event creates the key. */
  readonly id: string
  /** When the event was queued (epoch ms): its `created_at`/`updated_at` if it inserts or replaces. */
  readonly received_at: number
}

/** Replaces a (user, day)'s committed objects by objects holding its late events (see `ArchiveLedger.fold`). */
export interface ArchiveFold {
  readonly day: string
  readonly user_id: UserId
  /** The committed objects the fold read: they are retired (their keys not among `objects`). */
  readonly retire: ReadonlyArray<string>
  /** The replacement objects, begun, written and verified. Empty when the late events changed nothing. */
  readonly objects: ReadonlyArray<ArchivedObject>
  /** The late events folded in, removed from the queue. */
  readonly folded: ReadonlyArray<EventId>
  /** The archived values the fold replaced, with the event that replaced each: kept in the history table. */
  readonly superseded: ReadonlyArray<{ readonly record: ReadingRecord; readonly by: EventId }>
}

/** A user's readings of one UTC day that are older than the cutoff, still in the hot store. */
export interface ArchivableDay {
  /** `YYYY-MM-DD`, UTC. */
  readonly day: string
  readonly user_id: UserId
}

/** A due (user, UTC day) with how many of its readings are due: what the archiver packs into groups. */
export interface DueDay extends ArchivableDay {
  readonly rows: number
}

/** An object to commit with the keys and etags of the rows it holds (see `ArchiveLedger.commitGroup`). */
export interface ArchiveCommit {
  readonly object: ArchivedObject
  readonly rows: ReadonlyArray<Pick<ReadingRecord, "sensor_id" | "timestamp" | "etag">>
}

/** What a group commit did: the keys now committed, and the objects left out because a row changed. */
export interface GroupCommitted {
  readonly committed: ReadonlyArray<string>
  readonly conflicts: ReadonlyArray<ArchiveConflict>
}

/** One archive object as the ledger knows it. */
export interface ArchivedObject {
  readonly key: string
  readonly day: string
  readonly user_id: UserId
  readonly row_count: number
  /** The checksum of the rows (see the archive package), verified on read-back. */
  readonly checksum: string
  /** Epoch milliseconds of the first and last reading in the object. */
  readonly first_timestamp: number
  readonly last_timestamp: number
  /**
   * The sensors of the object's rows, sorted and each once, so a read for one sensor skips the objects
   * without it unread. Absent for objects committed before the ledger kept them (their Parquet
   * footer's statistics answer instead).
   */
  readonly sensor_ids?: ReadonlyArray<SensorId> | undefined
}

export class ArchiveLedgerError extends Schema.TaggedError<ArchiveLedgerError>()(
  "ArchiveLedgerError",
  StoreFailureFields
) {}

/** A row of the chunk changed or vanished between reading it and committing its object: nothing was removed. */
export class ArchiveConflict extends Schema.TaggedError<ArchiveConflict>()("ArchiveConflict", {
  key: Schema.String,
  expected: Schema.Number,
  removed: Schema.Number
}) {}

/** Another archiver run holds the archive lock. */
export class ArchiverBusy extends Schema.TaggedError<ArchiverBusy>()("ArchiverBusy", {}) {}

/**
 * A run's claim to be the only archiver: the fencing token it was given when it
 * took the lock. Every later acquisition gets a greater token, which supersedes it.
 */
export interface ArchiverLease {
  readonly token: number
}

/**
 * Another run took the archive lock after this one (this run's lock went with its
 * connection): `operation` was refused and changed nothing, and the run must stop.
 */
export class ArchiverLeaseLost extends Schema.TaggedError<ArchiverLeaseLost>()("ArchiverLeaseLost", {
  token: Schema.Number,
  operation: Schema.String
}) {}

/**
 * The archiver's side of the readings store: which readings are due, and the
 * ledger of archive objects. Committing an object removes its rows from the hot
 * store in the same transaction that marks the object committed, so a reading
 * is in exactly one place at every instant: the hot store, or one committed
 * object. Objects still `pending` (written, maybe, but never committed) are
 * leftovers of a crash; the archiver removes them before it writes new ones.
 *
 * Late events: once an object of a (user, UTC day) is committed, an event for a key of that day at or
 * before the newest archived instant that is not in the hot store never enters it; the readings
 * store's upsert queues it as a `LateEvent` (once per event id). The queue, the commit and the upsert's
 * routing take the same per-day lock, so no event slips between a commit's removal of a row and the
 * mark that routes its key to the queue. `fold` applies the queue to the objects.
 *
 * Exclusivity is fenced: `exclusive` hands the run a lease whose token the
 * ledger checks inside every transaction that changes the ledger (`begin`,
 * `commit`, `forget`, `markManifested`). A lock can be lost silently (its
 * connection dies while the run goes on); once a second run has taken it, the
 * first run's token is stale and each of those calls fails with
 * `ArchiverLeaseLost`, changing nothing.
 */
export class ArchiveLedger extends Context.Service<
  ArchiveLedger,
  {
    /**
     * Runs `use` holding the archive lock with a new lease, or fails with `ArchiverBusy` at once.
     * The lock is freed when `use` ends or its holder's connection dies; the lease stays good
     * until the next acquisition.
     */
    readonly exclusive: <A, E, R>(
      use: (lease: ArchiverLease) => Effect.Effect<A, E, R>
    ) => Effect.Effect<A, E | ArchiverBusy | ArchiveLedgerError, Exclude<R, Scope.Scope>>
    /** Fails with `ArchiverLeaseLost` unless `lease` is still the newest: checked before work the ledger cannot fence. */
    readonly checkLease: (lease: ArchiverLease) => Effect.Effect<void, ArchiverLeaseLost | ArchiveLedgerError>
    /**
     * Up to `limit` (day, user) pairs with readings before `before`, ordered by day then user, after `after`,
     * each with how many of its readings are due.
     */
    readonly archivableDays: (
      before: number,
      limit: number,
      after?: ArchivableDay
    ) => Effect.Effect<ReadonlyArray<DueDay>, ArchiveLedgerError>
    /** A user's readings in `[from, to)`, ordered by (timestamp, sensor), after the position `after`. */
    readonly readChunk: (query: {
      readonly user_id: UserId
      readonly from: number
      readonly to: number
      readonly limit: number
      readonly after?: readonly [timestamp: number, sensor: SensorId] | undefined
    }) => Effect.Effect<ReadonlyArray<ReadingRecord>, ArchiveLedgerError>
    /**
     * The readings of several users in `[from, to)` in one read, ordered by (user, timestamp, sensor): each
     * user's rows in `readChunk`'s order.
     */
    readonly readUsers: (query: {
      readonly user_ids: ReadonlyArray<UserId>
      readonly from: number
      readonly to: number
    }) => Effect.Effect<ReadonlyArray<ReadingRecord>, ArchiveLedgerError>
    /**
     * Records an object as pending before it is written, so a crash leaves a trace to clean up.
     * Answers `committed` when the same key is already committed (the same rows, archived before).
     */
    readonly begin: (
      lease: ArchiverLease,
      object: ArchivedObject
    ) => Effect.Effect<"pending" | "committed", ArchiverLeaseLost | ArchiveLedgerError>
    /** `begin` for several objects in one fenced transaction; the answers in the objects' order. */
    readonly beginGroup: (
      lease: ArchiverLease,
      objects: ReadonlyArray<ArchivedObject>
    ) => Effect.Effect<ReadonlyArray<"pending" | "committed">, ArchiverLeaseLost | ArchiveLedgerError>
    /**
     * In one transaction: removes the rows from the hot store (each only if its etag is unchanged)
     * and marks the object committed; fails with `ArchiveConflict`, changing nothing, if not every row went.
     */
    readonly commit: (
      lease: ArchiverLease,
      object: ArchivedObject,
      rows: ReadonlyArray<Pick<ReadingRecord, "sensor_id" | "timestamp" | "etag">>
    ) => Effect.Effect<void, ArchiverLeaseLost | ArchiveLedgerError | ArchiveConflict>
    /**
     * `commit` for several objects in one transaction, each on its own terms: an object all of whose rows
     * are still there with their etags has them removed and is marked committed; an object of which a row
     * changed or vanished removes nothing, stays pending and is answered as a conflict. A key already
     * committed (a retry whose answer was lost) is answered committed and removes nothing.
     */
    readonly commitGroup: (
      lease: ArchiverLease,
      entries: ReadonlyArray<ArchiveCommit>
    ) => Effect.Effect<GroupCommitted, ArchiverLeaseLost | ArchiveLedgerError>
    /** Objects begun and never committed. */
    readonly pending: Effect.Effect<ReadonlyArray<ArchivedObject>, ArchiveLedgerError>
    /** Objects a fold replaced, whose bytes are still to be removed. */
    readonly retired: Effect.Effect<ReadonlyArray<ArchivedObject>, ArchiveLedgerError>
    /** Drops a pending or retired entry (after its object, if any, was removed). Committed entries are kept. */
    readonly forget: (lease: ArchiverLease, key: string) => Effect.Effect<void, ArchiverLeaseLost | ArchiveLedgerError>
    /**
     * A user's committed objects holding readings in `[from, to)`, ordered by first timestamp; with
     * `sensorId`, only those that may hold that sensor's readings (the ones whose sensors are unknown too).
     */
    readonly objectsOverlapping: (
      userId: UserId,
      from: number,
      to: number,
      sensorId?: SensorId
    ) => Effect.Effect<ReadonlyArray<ArchivedObject>, ArchiveLedgerError>
    /** A user's queued late events for readings in `[from, to)`, ordered by (timestamp, sensor). */
    readonly lateEvents: (
      userId: UserId,
      from: number,
      to: number
    ) => Effect.Effect<ReadonlyArray<LateEvent>, ArchiveLedgerError>
    /** The (day, user) pairs with queued late events, ordered by day then user. */
    readonly lateDays: Effect.Effect<ReadonlyArray<ArchivableDay>, ArchiveLedgerError>
    /**
     * In one transaction under the day's lock: commits the fold's objects, retires the objects it replaced
     * (their bytes are removed afterwards), removes the folded events from the queue and keeps the
     * superseded values in the history. Fails with `ArchiveConflict`, changing nothing, if an object to
     * retire is no longer committed.
     */
    readonly fold: (
      lease: ArchiverLease,
      fold: ArchiveFold
    ) => Effect.Effect<void, ArchiverLeaseLost | ArchiveLedgerError | ArchiveConflict>
    /** Days with committed objects whose manifest has not been written since. */
    readonly unmanifestedDays: Effect.Effect<ReadonlyArray<string>, ArchiveLedgerError>
    /** Every committed object of a day, in key order. */
    readonly objectsOfDay: (day: string) => Effect.Effect<ReadonlyArray<ArchivedObject>, ArchiveLedgerError>
    readonly markManifested: (
      lease: ArchiverLease,
      day: string,
      keys: ReadonlyArray<string>
    ) => Effect.Effect<void, ArchiverLeaseLost | ArchiveLedgerError>
    /** Drops the hot store's monthly partitions that end at or before `before` and hold no rows; their names. */
    readonly dropEmptyPartitions: (before: number) => Effect.Effect<ReadonlyArray<string>, ArchiveLedgerError>
  }
>()("dexmon/ports/reading-store/ArchiveLedger") {}
