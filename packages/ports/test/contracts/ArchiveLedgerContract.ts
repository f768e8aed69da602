import { EventId, SensorId, UserId } from "@dexmon/domain"
import { assert, layer } from "@effect/vitest"
import { Deferred, Effect, Fiber, type Layer } from "effect"
import { SqlClient } from "effect/sql"
import {
  type ArchivedObject,
  ArchiveLedger,
  ArchiverLeaseLost,
  ReadingStore,
  type ReadingWrite
} from "../../src/index.ts"
import { type ContractOptions, suiteTitle } from "./ReadingStoreContract.ts"

let runCounter = 0
const newUser = () => UserId.make(`ledger-${Date.now().toString(36)}-${runCounter++}`)
const day = "2026-06-10"
const t0 = Date.parse(`${day}T00:00:00.000Z`)
let eventCounter = 0
const eventId = () => EventId.make(`01900000-0000-7000-8000-${(++eventCounter).toString(16).padStart(12, "0")}`)
/** Sensor names are per user: a sensor belongs to one user, and `(sensor, timestamp)` is the reading's key. */
const write = (user: UserId, sensor: string, timestamp: number, value: number): ReadingWrite => ({
  event_id: eventId(),
  sensor_id: SensorId.make(sensor.startsWith(user) ? sensor : `${user}-${sensor}`),
  user_id: user,
  timestamp,
  glucose_value: value,
  source: "SENSOR"
})
/** Six readings of one user on `day`, five minutes apart, on two sensors. */
const seed = (user: UserId) =>
  Array.from({ length: 6 }, (_, i) => write(user, `s${i % 2}`, t0 + Math.floor(i / 2) * 300_000, 80 + i))
const objectFor = (user: UserId, rows: ReadonlyArray<{ timestamp: number }>, key: string): ArchivedObject => ({
  key,
  day,
  user_id: user,
  row_count: rows.length,
  checksum: `checksum-of-${key}`,
  first_timestamp: rows[0]!.timestamp,
  last_timestamp: rows[rows.length - 1]!.timestamp
})
const wholeDay = (user: UserId) => ({ user_id: user, from: t0, to: t0 + 86_400_000, limit: 1000 })

/** A new lease, as a run gets one; it stays good after the lock is released, until the next acquisition. */
const newLease = Effect.gen(function* () {
  const ledger = yield* ArchiveLedger
  return yield* ledger.exclusive((lease) => Effect.succeed(lease))
})

/** A new user's six readings on `day`, read back whole and begun as one pending object named `name`. */
const seededAndBegun = Effect.fnUntraced(function* (name: string) {
  const ledger = yield* ArchiveLedger
  const user = newUser()
  yield* (yield* ReadingStore).upsert(seed(user))
  const rows = yield* ledger.readChunk(wholeDay(user))
  const object = objectFor(user, rows, `test/${user}/${name}`)
  const lease = yield* newLease
  yield* ledger.begin(lease, object)
  return { user, rows, object, lease }
})

/** A part of the hot table: a monthly partition, or a TimescaleDB chunk; its range in epoch ms, end exclusive. */
export interface HotPart {
  readonly name: string
  readonly from: number
  readonly to: number
}

/**
 * The part of the hot table that holds the reading `(sensor, timestamp)`, as the catalog has it: the row's
 * `tableoid`, and the range of that partition (its bound) or chunk (`timescaledb_information.chunks`).
 */
export const partHolding = Effect.fnUntraced(function* (sensor: string, timestamp: number) {
  const sql = yield* SqlClient.SqlClient
  const [part] = yield* sql<{ name: string; from_ms: number | null; to_ms: number | null }>`
    WITH bound AS (
      SELECT c.relname AS name,
        regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM [(]''([^'']+)''[)] TO [(]''([^'']+)''[)]') AS range
      FROM glucose_readings r JOIN pg_class c ON c.oid = r.tableoid
      WHERE r.sensor_id = ${sensor} AND r."timestamp" = ${new Date(timestamp).toISOString()}::timestamptz
    )
    SELECT name, (extract(epoch FROM range[1]::timestamptz) * 1000)::float8 AS from_ms,
      (extract(epoch FROM range[2]::timestamptz) * 1000)::float8 AS to_ms
    FROM bound`
  assert.isDefined(part, `a part holds ${sensor} at ${new Date(timestamp).toISOString()}`)
  if (part!.from_ms !== null && part!.to_ms !== null) {
    return { name: part!.name, from: Number(part!.from_ms), to: Number(part!.to_ms) } satisfies HotPart
  }
  // Not a partition: a chunk of a hypertable.
  const [chunk] = yield* sql<{ from_ms: number; to_ms: number }>`
    SELECT (extract(epoch FROM range_start) * 1000)::float8 AS from_ms,
      (extract(epoch FROM range_end) * 1000)::float8 AS to_ms
    FROM timescaledb_information.chunks WHERE hypertable_name = 'glucose_readings' AND chunk_name = ${part!.name}`
  assert.isDefined(chunk, `${part!.name} is a partition or a chunk of glucose_readings`)
  return { name: part!.name, from: Number(chunk!.from_ms), to: Number(chunk!.to_ms) } satisfies HotPart
})

/** The names of the hot table's parts (partitions and chunks are both its children in `pg_inherits`). */
export const hotParts = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ name: string }>`
    SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'glucose_readings'::regclass ORDER BY c.relname`
  return rows.map((row) => row.name)
})

const oneArchiver = "one archiver at a time: a second run gets ArchiverBusy until the first ends"

/**
 * The behaviour every layer of the archive ledger must have (it needs the readings store beside it, and
 * reads the hot table's parts from the catalog of the database both share).
 */
export const archiveLedgerContract = (
  name: string,
  stores: Layer.Layer<ArchiveLedger | ReadingStore | SqlClient.SqlClient, unknown>,
  options: ContractOptions = {}
) =>
  layer(stores, { timeout: 60_000, excludeTestServices: true })(
    suiteTitle(`ArchiveLedger contract: ${name}`, options, [oneArchiver]),
    (it) => {
      it.effect("lists due (day, user) pairs and reads a day's readings in (timestamp, sensor) order, in chunks", () =>
        Effect.gen(function* () {
          const ledger = yield* ArchiveLedger
          const readings = yield* ReadingStore
          const user = newUser()
          yield* readings.upsert(seed(user))
          yield* readings.upsert([write(user, "s0", t0 + 86_400_000, 90)]) // the next day
          const due = yield* ledger.archivableDays(t0 + 2 * 86_400_000, 10_000)
          const mine = due.filter((entry) => entry.user_id === user)
          assert.deepStrictEqual(
            mine.map((entry) => entry.day),
            [day, "2026-06-11"]
          )
          // Only readings strictly before the cutoff are due.
          const beforeFirst = yield* ledger.archivableDays(t0, 10_000)
          assert.isFalse(beforeFirst.some((entry) => entry.user_id === user))

          const all = yield* ledger.readChunk(wholeDay(user))
          assert.deepStrictEqual(
            all.map((row) => [row.timestamp, row.sensor_id, row.glucose_value]),
            seed(user).map((w) => [w.timestamp, w.sensor_id, w.glucose_value])
          )
          assert.isTrue(all.every((row) => row.version === 1 && row.etag.endsWith("-1") && row.user_id === user))
          const firstFour = yield* ledger.readChunk({ ...wholeDay(user), limit: 4 })
          const rest = yield* ledger.readChunk({
            ...wholeDay(user),
            after: [firstFour[3]!.timestamp, firstFour[3]!.sensor_id]
          })
          assert.deepStrictEqual([...firstFour, ...rest], all)
        })
      )

      it.effect(
        "commit removes exactly the object's rows and records it committed; the same key begun again stays committed",
        () =>
          Effect.gen(function* () {
            const ledger = yield* ArchiveLedger
            const readings = yield* ReadingStore
            const user = newUser()
            yield* readings.upsert(seed(user))
            const rows = yield* ledger.readChunk({ ...wholeDay(user), limit: 4 })
            const object = objectFor(user, rows, `test/${user}/a.parquet`)
            const lease = yield* newLease
            assert.strictEqual(yield* ledger.begin(lease, object), "pending")
            assert.isTrue((yield* ledger.pending).some((entry) => entry.key === object.key))
            assert.deepStrictEqual(yield* ledger.objectsOverlapping(user, t0, t0 + 86_400_000), [])

            yield* ledger.commit(lease, object, rows)
            // Retried after its answer was lost (it went through): a success that changes nothing, not a
            // conflict (which would make the archiver remove the committed object).
            yield* ledger.commit(lease, object, rows)
            const left = yield* ledger.readChunk(wholeDay(user))
            assert.strictEqual(left.length, 2)
            assert.isTrue(left.every((row) => row.timestamp > rows[3]!.timestamp || row.sensor_id > rows[3]!.sensor_id))
            assert.isFalse((yield* ledger.pending).some((entry) => entry.key === object.key))
            assert.deepStrictEqual(yield* ledger.objectsOverlapping(user, t0, t0 + 86_400_000), [object])
            // Overlap is by the object's first and last reading.
            assert.deepStrictEqual(
              yield* ledger.objectsOverlapping(user, object.last_timestamp + 1, t0 + 86_400_000),
              []
            )
            assert.deepStrictEqual(yield* ledger.objectsOverlapping(user, t0 - 1000, object.first_timestamp), [])
            assert.strictEqual(yield* ledger.begin(lease, object), "committed")
            // forget only ever drops pending entries.
            yield* ledger.forget(lease, object.key)
            assert.deepStrictEqual(yield* ledger.objectsOverlapping(user, t0, t0 + 86_400_000), [object])
          })
      )

      it.effect(
        "keeps each object's sensors; filtered by a sensor, lists the objects that hold it or whose sensors are unknown",
        () =>
          Effect.gen(function* () {
            const ledger = yield* ArchiveLedger
            const readings = yield* ReadingStore
            const user = newUser()
            yield* readings.upsert(seed(user))
            const rows = yield* ledger.readChunk(wholeDay(user))
            const lease = yield* newLease
            const s0 = SensorId.make(`${user}-s0`)
            const s1 = SensorId.make(`${user}-s1`)
            // Three objects over the same rows' span: one per sensor, and one archived before sensors were kept.
            const only0 = { ...objectFor(user, rows, `test/${user}/s0.parquet`), sensor_ids: [s0] }
            const only1 = { ...objectFor(user, rows, `test/${user}/s1.parquet`), sensor_ids: [s1] }
            const unknown = objectFor(user, rows, `test/${user}/old.parquet`)
            yield* ledger.begin(lease, only0)
            yield* ledger.commit(lease, only0, rows)
            yield* ledger.fold(lease, {
              day,
              user_id: user,
              retire: [],
              objects: [only1, unknown],
              folded: [],
              superseded: []
            })
            const all = yield* ledger.objectsOverlapping(user, t0, t0 + 86_400_000)
            assert.deepStrictEqual(
              [...all].sort((a, b) => (a.key < b.key ? -1 : 1)),
              [unknown, only0, only1].sort((a, b) => (a.key < b.key ? -1 : 1))
            )
            const holding = (sensor: SensorId) =>
              ledger
                .objectsOverlapping(user, t0, t0 + 86_400_000, sensor)
                .pipe(Effect.map((objects) => objects.map((object) => object.key).sort()))
            assert.deepStrictEqual(yield* holding(s0), [unknown.key, only0.key].sort())
            assert.deepStrictEqual(yield* holding(s1), [unknown.key, only1.key].sort())
            assert.deepStrictEqual(yield* holding(SensorId.make(`${user}-none`)), [unknown.key])
            assert.deepStrictEqual(
              (yield* ledger.objectsOfDay(day)).find((object) => object.key === only1.key),
              only1
            )
          })
      )

      it.effect(
        "a group: read in one query, begun in one statement; its commit removes and commits each unchanged object and leaves out the one whose row changed",
        () =>
          Effect.gen(function* () {
            const ledger = yield* ArchiveLedger
            const readings = yield* ReadingStore
            const users = [newUser(), newUser(), newUser()]
            for (const user of users) yield* readings.upsert(seed(user))
            const due = (yield* ledger.archivableDays(t0 + 86_400_000, 10_000)).filter((entry) =>
              users.includes(entry.user_id)
            )
            assert.deepStrictEqual(
              due,
              [...users].sort().map((user) => ({ day, user_id: user, rows: 6 }))
            )
            const rows = yield* ledger.readUsers({ user_ids: users, from: t0, to: t0 + 86_400_000 })
            const perUser = [...users].sort().map((user) => rows.filter((row) => row.user_id === user))
            assert.deepStrictEqual(rows, perUser.flat(), "ordered by user first")
            for (const [i, user] of [...users].sort().entries()) {
              assert.deepStrictEqual(
                perUser[i],
                yield* ledger.readChunk(wholeDay(user)),
                "then as readChunk orders them"
              )
            }
            const entries = perUser.map((mine) => ({
              object: objectFor(mine[0]!.user_id, mine, `test/${mine[0]!.user_id}/group.parquet`),
              rows: mine
            }))
            const lease = yield* newLease
            // The first object was committed before (a retried begin): it is answered as such.
            yield* ledger.begin(lease, entries[0]!.object)
            yield* ledger.commit(lease, entries[0]!.object, entries[0]!.rows)
            assert.deepStrictEqual(
              yield* ledger.beginGroup(
                lease,
                entries.map((entry) => entry.object)
              ),
              ["committed", "pending", "pending"]
            )
            // A newer value for a reading of the last object arrives between the read and the commit.
            const changed = entries[2]!.rows[3]!
            yield* readings.upsert([write(changed.user_id, changed.sensor_id, changed.timestamp, 250)])

            const outcome = yield* ledger.commitGroup(lease, entries)
            assert.deepStrictEqual(outcome.committed, [entries[0]!.object.key, entries[1]!.object.key])
            assert.deepStrictEqual(
              outcome.conflicts.map((conflict) => [conflict.key, conflict.expected, conflict.removed]),
              [[entries[2]!.object.key, 6, 5]]
            )
            assert.deepStrictEqual(yield* ledger.readChunk(wholeDay(entries[1]!.object.user_id)), [], "removed")
            assert.strictEqual(
              (yield* ledger.readChunk(wholeDay(entries[2]!.object.user_id))).length,
              6,
              "the changed object's rows all stay hot"
            )
            assert.deepStrictEqual(
              (yield* ledger.pending).filter((entry) => users.includes(entry.user_id)).map((entry) => entry.key),
              [entries[2]!.object.key],
              "it stays pending"
            )
            for (const entry of entries.slice(0, 2)) {
              assert.deepStrictEqual(yield* ledger.objectsOverlapping(entry.object.user_id, t0, t0 + 86_400_000), [
                entry.object
              ])
            }
            // Retried after its answer was lost: the committed keys are answered committed, nothing more goes.
            const again = yield* ledger.commitGroup(lease, entries.slice(0, 2))
            assert.deepStrictEqual(again, { committed: outcome.committed, conflicts: [] })
            // A stale lease commits nothing.
            yield* newLease
            const lost = yield* ledger.commitGroup(lease, entries.slice(2)).pipe(Effect.flip)
            assert.strictEqual(lost._tag, "ArchiverLeaseLost")
            assert.strictEqual((yield* ledger.readChunk(wholeDay(entries[2]!.object.user_id))).length, 6)
          })
      )

      it.effect("a row that changed after it was read makes the commit fail and change nothing", () =>
        Effect.gen(function* () {
          const ledger = yield* ArchiveLedger
          const readings = yield* ReadingStore
          const { user, rows, object, lease } = yield* seededAndBegun("b.parquet")
          // A newer sensor value for the third reading arrives between the read and the commit.
          yield* readings.upsert([write(user, rows[2]!.sensor_id, rows[2]!.timestamp, 199)])
          const conflict = yield* ledger.commit(lease, object, rows).pipe(Effect.flip)
          assert.strictEqual(conflict._tag, "ArchiveConflict")
          if (conflict._tag === "ArchiveConflict") {
            assert.strictEqual(conflict.expected, 6)
            assert.strictEqual(conflict.removed, 5)
          }
          assert.strictEqual((yield* ledger.readChunk(wholeDay(user))).length, 6, "no row left the hot store")
          assert.isTrue(
            (yield* ledger.pending).some((entry) => entry.key === object.key),
            "still pending"
          )
          assert.deepStrictEqual(yield* ledger.objectsOverlapping(user, t0, t0 + 86_400_000), [])
          yield* ledger.forget(lease, object.key)
          assert.isFalse((yield* ledger.pending).some((entry) => entry.key === object.key))
        })
      )

      it.effect(
        "after a commit, events for its keys (or new keys up to its last reading) are queued once, not hot; a fold swaps the objects and empties the queue, under the lease",
        () =>
          Effect.gen(function* () {
            const ledger = yield* ArchiveLedger
            const readings = yield* ReadingStore
            const user = newUser()
            yield* readings.upsert(seed(user))
            // The first four readings are archived; the last two (t0 + 10 min) stay hot.
            const rows = yield* ledger.readChunk({ ...wholeDay(user), limit: 4 })
            const object = objectFor(user, rows, `test/${user}/g.parquet`)
            const lease = yield* newLease
            yield* ledger.begin(lease, object)
            yield* ledger.commit(lease, object, rows)

            const archivedKey = write(user, rows[0]!.sensor_id, rows[0]!.timestamp, 150)
            const newKeyBefore = write(user, "s2", t0 + 60_000, 151)
            const hotKey = write(user, "s0", t0 + 600_000, 152)
            const newKeyAfter = write(user, "s2", t0 + 900_000, 153)
            const summary = yield* readings.upsert([archivedKey, newKeyBefore, hotKey, newKeyAfter])
            assert.deepStrictEqual(summary, { inserted: 1, replaced: 1, unchanged: 2 })
            yield* readings.upsert([archivedKey]) // a redelivery
            const queued = yield* ledger.lateEvents(user, t0, t0 + 86_400_000)
            assert.deepStrictEqual(
              queued.map((event) => [event.event_id, event.sensor_id, event.timestamp, event.glucose_value]),
              [newKeyBefore, archivedKey]
                .sort((a, b) => a.timestamp - b.timestamp)
                .map((w) => [w.event_id, w.sensor_id, w.timestamp, w.glucose_value])
            )
            assert.isUndefined(yield* readings.get(user, archivedKey.sensor_id, archivedKey.timestamp), "not hot")
            assert.isUndefined(yield* readings.get(user, newKeyBefore.sensor_id, newKeyBefore.timestamp), "not hot")
            assert.strictEqual((yield* readings.get(user, hotKey.sensor_id, hotKey.timestamp))?.glucose_value, 152)
            assert.strictEqual(
              (yield* readings.get(user, newKeyAfter.sensor_id, newKeyAfter.timestamp))?.glucose_value,
              153
            )
            assert.deepStrictEqual(
              (yield* ledger.lateDays).filter((entry) => entry.user_id === user),
              [{ day, user_id: user }]
            )

            const replacement = objectFor(user, rows, `test/${user}/h.parquet`)
            const fold = {
              day,
              user_id: user,
              retire: [object.key],
              objects: [replacement],
              folded: queued.map((event) => event.event_id),
              superseded: []
            }
            const current = yield* newLease
            const stale = yield* ledger.fold(lease, fold).pipe(Effect.flip)
            assert.strictEqual(stale._tag, "ArchiverLeaseLost")
            assert.strictEqual(
              (yield* ledger.lateEvents(user, t0, t0 + 86_400_000)).length,
              2,
              "a stale fold changed nothing"
            )
            yield* ledger.begin(current, replacement)
            yield* ledger.fold(current, fold)
            assert.deepStrictEqual(yield* ledger.lateEvents(user, t0, t0 + 86_400_000), [])
            assert.deepStrictEqual(yield* ledger.objectsOverlapping(user, t0, t0 + 86_400_000), [replacement])
            assert.deepStrictEqual(
              (yield* ledger.retired).filter((entry) => entry.user_id === user),
              [object]
            )
            assert.include(yield* ledger.unmanifestedDays, day)
            // The same fold retried after its answer was lost (it went through) is a success that changes
            // nothing; another fold of the retired object is a conflict, and changes nothing either.
            yield* ledger.fold(current, fold)
            assert.deepStrictEqual(yield* ledger.objectsOverlapping(user, t0, t0 + 86_400_000), [replacement])
            const other = objectFor(user, rows, `test/${user}/i.parquet`)
            const again = yield* ledger.fold(current, { ...fold, objects: [other], folded: [] }).pipe(Effect.flip)
            assert.strictEqual(again._tag, "ArchiveConflict")
            assert.deepStrictEqual(yield* ledger.objectsOverlapping(user, t0, t0 + 86_400_000), [replacement])
            yield* ledger.forget(current, object.key)
            assert.deepStrictEqual(
              (yield* ledger.retired).filter((entry) => entry.user_id === user),
              []
            )
          })
      )

      it.effect("days with newly committed objects are unmanifested until marked", () =>
        Effect.gen(function* () {
          const ledger = yield* ArchiveLedger
          const { rows, object, lease } = yield* seededAndBegun("c.parquet")
          yield* ledger.commit(lease, object, rows)
          assert.include(yield* ledger.unmanifestedDays, day)
          const ofDay = yield* ledger.objectsOfDay(day)
          assert.isTrue(ofDay.some((entry) => entry.key === object.key))
          yield* ledger.markManifested(
            lease,
            day,
            ofDay.map((entry) => entry.key)
          )
          assert.notInclude(yield* ledger.unmanifestedDays, day)
        })
      )

      // The first run holds its connection while the second asks for one: a pool of one would wait forever.
      if (options.singleSession !== true)
        it.effect(oneArchiver, () =>
          Effect.gen(function* () {
            const ledger = yield* ArchiveLedger
            const holding = yield* Deferred.make<void>()
            const release = yield* Deferred.make<void>()
            const first = yield* ledger
              .exclusive(() => Deferred.succeed(holding, undefined).pipe(Effect.andThen(Deferred.await(release))))
              .pipe(Effect.forkChild)
            yield* Deferred.await(holding)
            const busy = yield* ledger.exclusive(() => Effect.void).pipe(Effect.flip)
            assert.strictEqual(busy._tag, "ArchiverBusy")
            yield* Deferred.succeed(release, undefined)
            yield* Fiber.join(first)
            assert.strictEqual(yield* ledger.exclusive(() => Effect.succeed("ran")), "ran")
          })
        )

      it.effect(
        "a newer lease fences the older one: its begin, commit, forget and manifest marks fail with ArchiverLeaseLost and change nothing",
        () =>
          Effect.gen(function* () {
            const ledger = yield* ArchiveLedger
            // The first run begins an object; then its lock is lost and a second run takes it.
            const { user, rows, object, lease: stale } = yield* seededAndBegun("e.parquet")
            const current = yield* newLease
            assert.isAbove(current.token, stale.token)
            const lost = (effect: Effect.Effect<unknown, { readonly _tag: string }>) =>
              Effect.gen(function* () {
                const error = yield* Effect.flip(effect)
                assert.strictEqual(error._tag, "ArchiverLeaseLost")
                if (error instanceof ArchiverLeaseLost) assert.strictEqual(error.token, stale.token)
              })

            yield* lost(ledger.checkLease(stale))
            yield* lost(ledger.commit(stale, object, rows))
            assert.strictEqual((yield* ledger.readChunk(wholeDay(user))).length, 6, "no row left the hot store")
            assert.deepStrictEqual(yield* ledger.objectsOverlapping(user, t0, t0 + 86_400_000), [], "nothing committed")
            yield* lost(ledger.forget(stale, object.key))
            assert.isTrue(
              (yield* ledger.pending).some((entry) => entry.key === object.key),
              "still pending"
            )
            const other = objectFor(user, rows, `test/${user}/f.parquet`)
            yield* lost(ledger.begin(stale, other))
            assert.isFalse(
              (yield* ledger.pending).some((entry) => entry.key === other.key),
              "not begun"
            )

            // The newer run recovers the pending entry and archives the rows itself.
            yield* ledger.checkLease(current)
            yield* ledger.forget(current, object.key)
            assert.strictEqual(yield* ledger.begin(current, other), "pending")
            yield* ledger.commit(current, other, rows)
            assert.deepStrictEqual(yield* ledger.objectsOverlapping(user, t0, t0 + 86_400_000), [other])
            yield* lost(ledger.markManifested(stale, day, [other.key]))
            assert.include(yield* ledger.unmanifestedDays, day, "still unmanifested")
            yield* ledger.markManifested(current, day, [other.key])
          })
      )

      it.effect("every acquisition gets a newer lease, also after the holder released the lock", () =>
        Effect.gen(function* () {
          const ledger = yield* ArchiveLedger
          const tokens = [yield* newLease, yield* newLease, yield* newLease].map((lease) => lease.token)
          assert.deepStrictEqual(
            tokens,
            [...tokens].sort((a, b) => a - b)
          )
          assert.strictEqual(new Set(tokens).size, 3)
          // Only the newest is good.
          yield* ledger.checkLease({ token: tokens[2]! })
          const error = yield* ledger.checkLease({ token: tokens[1]! }).pipe(Effect.flip)
          assert.strictEqual(error._tag, "ArchiverLeaseLost")
        })
      )

      it.effect(
        "drops a part of the hot table (a month's partition, a chunk) once it ends before the cutoff and holds no rows",
        () =>
          Effect.gen(function* () {
            const ledger = yield* ArchiveLedger
            const readings = yield* ReadingStore
            const user = newUser()
            const sensor = `${user}-s0`
            // Three readings in three parts (a month or a week apart, whichever the layout cuts by): the first
            // and the last are archived, the middle one stays hot.
            const archived = Date.parse("2001-03-10T08:00:00.000Z")
            const hot = archived + 31 * 86_400_000
            const last = archived + 72 * 86_400_000
            yield* readings.upsert([
              write(user, sensor, archived, 100),
              write(user, sensor, hot, 101),
              write(user, sensor, last, 102)
            ])
            const [archivedPart, hotPart, lastPart] = yield* Effect.forEach([archived, hot, last], (t) =>
              partHolding(sensor, t)
            )
            assert.isTrue(archivedPart!.to <= hotPart!.from && hotPart!.to <= lastPart!.from, "three parts, in order")
            // After the middle part's end, before the last part's.
            const cutoff = lastPart!.to - 1
            // Every part still holds a row: nothing to drop.
            assert.deepStrictEqual(yield* ledger.dropEmptyPartitions(cutoff), [])

            const lease = yield* newLease
            for (const at of [archived, last]) {
              const rows = yield* ledger.readChunk({ user_id: user, from: at, to: at + 1, limit: 10 })
              const object = {
                ...objectFor(user, rows, `test/${user}/${at}.parquet`),
                day: new Date(at).toISOString().slice(0, 10)
              }
              yield* ledger.begin(lease, object)
              yield* ledger.commit(lease, object, rows)
            }
            // The first part is empty and over; the middle one is over but holds a row; the last one is empty
            // but ends after the cutoff.
            assert.deepStrictEqual(yield* ledger.dropEmptyPartitions(cutoff), [archivedPart!.name])
            assert.deepStrictEqual(yield* ledger.dropEmptyPartitions(cutoff), [])
            const parts = yield* hotParts
            assert.notInclude(parts, archivedPart!.name)
            assert.includeMembers(parts, [hotPart!.name, lastPart!.name])
            assert.deepStrictEqual(
              (yield* ledger.readChunk({
                user_id: user,
                from: archived - 86_400_000,
                to: last + 86_400_000,
                limit: 10
              })).map((row) => [row.timestamp, row.glucose_value]),
              [[hot, 101]]
            )
            assert.strictEqual((yield* readings.get(user, SensorId.make(sensor), hot))?.glucose_value, 101)
          })
      )
    }
  )
