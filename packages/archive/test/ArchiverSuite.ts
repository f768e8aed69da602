import { EventId, HotRetention, Reading, SensorId, UserId } from "@dexmon/domain"
import {
  ArchiveLedger,
  ArchiveStore,
  PostgresArchiveLedger,
  type ReadingRecord,
  ReadingStore,
  type ReadingWrite
} from "@dexmon/ports"
import { stoppedClock } from "@dexmon/testing"
import { assert, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Fiber, Layer, Schedule } from "effect"
import { SqlClient } from "effect/sql"
import {
  type ArchiverConfig,
  checksumOf,
  dayOf,
  dayStart,
  decodeReadings,
  encodeReadings,
  makeArchiver,
  manifestKey,
  nextDayStart,
  objectKey,
  ReadingsQuery
} from "../src/index.ts"

const HOUR = 3_600_000
const DAY = 24 * HOUR
const RETENTION_DAYS = 10

/** The stores, and the readings database itself (to cut a run's lock connection). */
export type ArchiveStores = ReadingStore | ArchiveLedger | ArchiveStore | SqlClient.SqlClient

let runCounter = 0
let eventCounter = 0
export const eventId = () => EventId.make(`01900000-0000-7000-8000-${(++eventCounter).toString(16).padStart(12, "0")}`)

/**
 * Readings of `users` users on two sensors each, every two hours from `start` until before `end` (the first
 * sensor's from the sensor, the second's entered by hand).
 */
export const seedWrites = (run: string, users: number, start: number, end: number): ReadonlyArray<ReadingWrite> => {
  const writes: Array<ReadingWrite> = []
  for (let u = 0; u < users; u++) {
    for (let t = start; t < end; t += 2 * HOUR) {
      for (let s = 0; s < 2; s++) {
        writes.push({
          event_id: eventId(),
          sensor_id: SensorId.make(`${run}-u${u}-s${s}`),
          user_id: UserId.make(`${run}-u${u}`),
          timestamp: t,
          glucose_value: 40 + ((t / HOUR + s * 7 + u * 13) % 300),
          source: s === 0 ? "SENSOR" : "MANUAL"
        })
      }
    }
  }
  return writes
}

/** Three users over the last 14 days, at :30 past the hour, so no cutoff lands on a reading. */
const recentWrites = (run: string, now: number) =>
  seedWrites(run, 3, Math.floor((now - 14 * DAY) / HOUR) * HOUR + 30 * 60_000, now - HOUR)

type Keyed = Pick<ReadingRecord, "timestamp" | "sensor_id">
export const byPosition = (a: Keyed, b: Keyed) =>
  a.timestamp - b.timestamp || (a.sensor_id < b.sensor_id ? -1 : a.sensor_id > b.sensor_id ? 1 : 0)

/** Every row of the run's users in the hot store, as the archiver would read them. */
export const hotRows = (users: ReadonlyArray<UserId>) =>
  Effect.gen(function* () {
    const ledger = yield* ArchiveLedger
    const rows: Array<ReadingRecord> = []
    for (const user of users)
      rows.push(
        ...(yield* ledger.readChunk({ user_id: user, from: 0, to: Date.parse("9999-01-01T00:00:00Z"), limit: 1e6 }))
      )
    return rows.sort(byPosition)
  })

/** What an uninterrupted run must leave in the archive: the due rows per user and day, in chunks, keyed by checksum. */
const expectedObjects = (config: ArchiverConfig, due: ReadonlyArray<ReadingRecord>) => {
  const groups = new Map<string, Array<ReadingRecord>>()
  for (const row of [...due].sort(byPosition)) {
    const group = `${dayOf(row.timestamp)}|${row.user_id}`
    groups.set(group, [...(groups.get(group) ?? []), row])
  }
  const objects = new Map<string, ReadonlyArray<ReadingRecord>>()
  for (const [group, rows] of groups) {
    const [day, user] = group.split("|") as [string, string]
    for (let i = 0; i < rows.length; i += config.maxRowsPerObject) {
      const chunk = rows.slice(i, i + config.maxRowsPerObject)
      objects.set(objectKey(config.prefix, day, user, checksumOf(chunk)), chunk)
    }
  }
  return objects
}

/** The final state every run must reach: each due reading in exactly one object, the rest hot, nothing else stored. */
export const assertArchived = Effect.fnUntraced(function* (
  config: ArchiverConfig,
  before: ReadonlyArray<ReadingRecord>,
  users: ReadonlyArray<UserId>,
  cutoff: number
) {
  const store = yield* ArchiveStore
  const due = before.filter((row) => row.timestamp < cutoff)
  assert.isAbove(due.length, 0)
  assert.isBelow(due.length, before.length)
  assert.deepStrictEqual(
    yield* hotRows(users),
    before.filter((row) => row.timestamp >= cutoff),
    "the hot store keeps exactly the readings newer than the cutoff"
  )
  const expected = expectedObjects(config, due)
  const stored = yield* store.list(`${config.prefix}/`)
  const objects = stored.filter((object) => object.key.endsWith(".parquet"))
  assert.deepStrictEqual(objects.map((object) => object.key).sort(), [...expected.keys()].sort())
  const seen = new Set<string>()
  for (const object of objects) {
    const rows = yield* decodeReadings((yield* store.get(object.key))!)
    assert.deepStrictEqual(rows, expected.get(object.key), object.key)
    for (const row of rows) {
      const identity = `${row.sensor_id}|${row.timestamp}`
      assert.isFalse(seen.has(identity), `${identity} is in two objects`)
      seen.add(identity)
    }
  }
  assert.strictEqual(seen.size, due.length)
  const days = [...new Set(due.map((row) => dayOf(row.timestamp)))].sort()
  const manifests = stored.filter((object) => object.key.endsWith("_manifest.json")).map((object) => object.key)
  assert.deepStrictEqual(manifests.sort(), days.map((day) => manifestKey(config.prefix, day)).sort())
  for (const day of days) {
    const manifest = JSON.parse(new TextDecoder().decode((yield* store.get(manifestKey(config.prefix, day)))!))
    const listed = (manifest.objects as Array<{ key: string; rows: number }>).map((entry) => entry.key).sort()
    assert.deepStrictEqual(listed, [...expected.keys()].filter((key) => key.includes(`/date=${day}/`)).sort())
    assert.strictEqual(manifest.rows, due.filter((row) => dayOf(row.timestamp) === day).length)
  }
})

/** An archive store that crashes (a defect, as a killed process would stop) at the `crashAt`-th put matching `which`. */
export const crashingStore = (store: typeof ArchiveStore.Service, which: RegExp, crashAt: number) => {
  let puts = 0
  return ArchiveStore.of({
    ...store,
    put: (key, bytes) =>
      store
        .put(key, bytes)
        .pipe(
          Effect.andThen(
            Effect.suspend(() =>
              which.test(key) && ++puts === crashAt ? Effect.die(new Error(`crash after writing ${key}`)) : Effect.void
            )
          )
        )
  })
}

/**
 * Terminates the backend that holds the archive lock in this database, as a failover or a partition would
 * cut it, and waits until it is gone (and so its lock freed). Answers how many backends it ended.
 */
const cutLockConnection = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const ended = yield* sql<{ ended: boolean }>`
    SELECT pg_terminate_backend(pid, 30000) AS ended FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND classid = 0 AND objsubid = 1
      AND objid::bigint = ${PostgresArchiveLedger.ARCHIVER_LOCK}
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`
  return ended.filter((row) => row.ended).length
}).pipe(Effect.orDie)

const setUp = Effect.fnUntraced(function* (maxRowsPerObject: number, groupObjects = 4) {
  const run = `a${Date.now().toString(36)}${runCounter++}`
  const config: ArchiverConfig = { prefix: `test-archive/${run}`, maxRowsPerObject, concurrency: 3, groupObjects }
  const now = yield* Clock.currentTimeMillis
  const writes = recentWrites(run, now)
  yield* (yield* ReadingStore).upsert(writes)
  const users = [...new Set(writes.map((write) => write.user_id))]
  const before = yield* hotRows(users)
  return { config, users, before }
})

const retention = Layer.succeed(HotRetention, HotRetention.of({ millis: RETENTION_DAYS * DAY }))

/** Every page of a user's readings in `[from, to)` through the read path (hot, archived and late), seven at a time. */
export const readAll = (user: UserId, from: number, to: number) =>
  Effect.gen(function* () {
    const query = yield* ReadingsQuery.pipe(Effect.provide(ReadingsQuery.layer))
    const items: Array<Reading> = []
    let cursor: string | undefined
    do {
      const page = yield* query.list({ user_id: user, from, to, limit: 7, cursor })
      items.push(...page.items)
      cursor = page.next_cursor ?? undefined
    } while (cursor !== undefined)
    return items
  })

/** The readings at one key among `items`: a key must be there once. */
const atKey = (items: ReadonlyArray<Reading>, key: { sensor_id: string; timestamp: number }) =>
  items.filter((item) => item.sensor_id === key.sensor_id && item.timestamp === key.timestamp)

/** Every row of every archive object under the prefix, with the key of its object. */
export const archivedRows = (config: ArchiverConfig) =>
  Effect.gen(function* () {
    const store = yield* ArchiveStore
    const rows: Array<ReadingRecord & { readonly object: string }> = []
    for (const object of yield* store.list(`${config.prefix}/`)) {
      if (!object.key.endsWith(".parquet")) continue
      for (const row of yield* decodeReadings((yield* store.get(object.key))!))
        rows.push({ ...row, object: object.key })
    }
    return rows
  })

/** Fails loudly unless `condition` holds within about ten seconds, checked every 20 ms. */
const waitUntil = <E, R>(what: string, condition: Effect.Effect<boolean, E, R>) =>
  condition.pipe(
    Effect.flatMap((holds) => (holds ? Effect.void : Effect.fail(`not yet: ${what}`))),
    Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo({ times: 500 }))),
    Effect.orDie
  )

/**
 * The hot table's part holding `timestamp`: its monthly partition (PostgreSQL, which makes them by name) or
 * its TimescaleDB chunk, if there is one.
 */
const partHolding = (timestamp: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const [{ timescale }] = (yield* sql<{ timescale: boolean }>`
      SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') AS timescale`) as [
      { timescale: boolean }
    ]
    const at = new Date(timestamp).toISOString()
    const rows = timescale
      ? yield* sql<{ name: string }>`
          SELECT chunk_name AS name FROM timescaledb_information.chunks WHERE hypertable_name = 'glucose_readings'
            AND range_start <= ${at}::timestamptz AND range_end > ${at}::timestamptz`
      : yield* sql<{ name: string }>`
          SELECT relname AS name FROM pg_class WHERE oid = to_regclass(${`glucose_readings_${at.slice(0, 4)}${at.slice(5, 7)}`})`
    return rows[0]?.name
  }).pipe(Effect.orDie)

/** Backends of this database waiting for a lock (a row's, a transaction's or an advisory one). */
const lockWaiters = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<{ waiting: number }>`
    SELECT count(*)::int AS waiting FROM pg_stat_activity
    WHERE datname = current_database() AND wait_event_type = 'Lock'`
  return Number(row?.waiting ?? 0)
}).pipe(Effect.orDie)

/** How a run of the suite is limited by the server it runs on. */
export interface ArchiverSuiteOptions {
  /**
   * The database serves one session at a time (PGlite's TimescaleDB, a pool of one connection): the cases
   * that need a second session while a run holds one are left out, each named in the output as such.
   */
  readonly singleSession?: boolean
}

/**
 * The archiver on one set of stores, checked end to end. `stores` is built
 * afresh for every test: each test owns its database and archive prefix.
 */
export const archiverSuite = (
  name: string,
  stores: () => Layer.Layer<ArchiveStores, unknown>,
  options: ArchiverSuiteOptions = {}
) => {
  const provide = <A, E>(effect: Effect.Effect<A, E, ArchiveStores | HotRetention>) =>
    effect.pipe(Effect.provide(Layer.merge(stores(), retention)))
  /**
   * A case that needs two sessions at once: left out on a single-session database (the caller's title says
   * so), since it would wait forever there; the PostgreSQL runs of the suite cover it.
   */
  const twoSessions = (title: string, test: () => Effect.Effect<unknown, unknown>) => {
    if (options.singleSession !== true) it.live(`${name}: ${title}`, test)
  }

  it.live(
    `${name}: moves exactly the readings older than the retention, each into one object; a re-run changes nothing`,
    () =>
      provide(
        Effect.gen(function* () {
          const { config, users, before } = yield* setUp(10)
          const archiver = yield* makeArchiver(config)
          const first = yield* archiver.runOnce
          yield* assertArchived(config, before, users, first.cutoff)
          assert.strictEqual(first.rows, before.filter((row) => row.timestamp < first.cutoff).length)
          assert.strictEqual(first.recovered, 0)

          const store = yield* ArchiveStore
          const listed = yield* store.list(`${config.prefix}/`)
          // At the first run's instant: a later one may pass a reading's age and rightly move it.
          const second = yield* archiver.runOnce.pipe(
            Effect.provideService(Clock.Clock, stoppedClock(first.cutoff + RETENTION_DAYS * DAY))
          )
          assert.strictEqual(second.cutoff, first.cutoff)
          assert.strictEqual(second.rows, 0)
          assert.strictEqual(second.objects, 0)
          assert.deepStrictEqual(yield* store.list(`${config.prefix}/`), listed)
        })
      )
  )

  // In the second case the crashed run chunked differently (as before a configuration change), so the object
  // it left is not simply overwritten by the re-run: the re-run has to find it and remove it.
  for (const [point, which, crashAt, crashedRun] of [
    ["after its fifth object is written, before that object is committed", /\.parquet$/, 5, {}],
    [
      "after writing its first object, with smaller objects than the re-run",
      /\.parquet$/,
      1,
      { maxRowsPerObject: 7, concurrency: 1 }
    ],
    ["after every object is committed, while writing the first manifest", /_manifest\.json$/, 1, {}]
  ] as const) {
    it.live(`${name}: a run that crashes ${point}, then a re-run, ends as an uninterrupted run`, () =>
      provide(
        Effect.gen(function* () {
          const { config, users, before } = yield* setUp(10)
          const store = yield* ArchiveStore
          const crashing = yield* makeArchiver({ ...config, ...crashedRun }).pipe(
            Effect.provideService(ArchiveStore, crashingStore(store, which, crashAt))
          )
          const crash = yield* crashing.runOnce.pipe(Effect.exit)
          assert.isTrue(crash._tag === "Failure", "the crashing run fails")
          const rerun = yield* (yield* makeArchiver(config)).runOnce
          yield* assertArchived(config, before, users, rerun.cutoff)
        })
      )
    )
  }

  it.live(`${name}: a reading that changes while its chunk is archived stays hot, and the next run archives it`, () =>
    provide(
      Effect.gen(function* () {
        const { config, users, before } = yield* setUp(1000)
        const store = yield* ArchiveStore
        const readings = yield* ReadingStore
        const oldest = before[0]!
        let changed = false
        // A late event rewrites the oldest reading right after its object is written.
        const racing = ArchiveStore.of({
          ...store,
          put: (key, bytes) =>
            store.put(key, bytes).pipe(
              Effect.andThen(
                changed || !key.includes(`/date=${dayOf(oldest.timestamp)}/user=${oldest.user_id}/`)
                  ? Effect.void
                  : Effect.suspend(() => {
                      changed = true
                      return readings.upsert([{ ...oldest, event_id: eventId(), glucose_value: 42, source: "SENSOR" }])
                    })
              ),
              Effect.orDie
            )
        })
        const first = yield* (yield* makeArchiver(config).pipe(Effect.provideService(ArchiveStore, racing))).runOnce
        assert.strictEqual(first.conflicts, 1)
        assert.isTrue(
          (yield* hotRows(users)).some(
            (row) => row.sensor_id === oldest.sensor_id && row.timestamp === oldest.timestamp
          ),
          "the changed reading is still hot"
        )
        const rewritten = (yield* hotRows(users)).find(
          (row) => row.sensor_id === oldest.sensor_id && row.timestamp === oldest.timestamp
        )!
        assert.strictEqual(rewritten.glucose_value, 42)
        const second = yield* (yield* makeArchiver(config)).runOnce
        assert.strictEqual(second.conflicts, 0)
        yield* assertArchived(
          config,
          before.map((row) => (row === oldest ? rewritten : row)),
          users,
          second.cutoff
        )
      })
    )
  )

  // A group's commit is one transaction: here it fails after removing the group's rows, while marking its
  // objects committed (a trigger lets the first two objects through, then raises on every other). The failed group must
  // leave its rows hot, a committed group none, and the re-run must converge.
  it.live(
    `${name}: a run whose group commit fails half-way (rows removed, objects not yet committed) keeps that group's rows hot; a re-run ends as an uninterrupted run`,
    () =>
      provide(
        Effect.gen(function* () {
          const { config, users, before } = yield* setUp(1000, 2)
          const sql = yield* SqlClient.SqlClient
          const ledger = yield* ArchiveLedger
          yield* sql`CREATE SEQUENCE archive_commit_crash`
          yield* sql.unsafe(`CREATE FUNCTION archive_commit_crash() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF nextval('archive_commit_crash') > 2 THEN RAISE EXCEPTION 'crash while committing %', NEW.key; END IF;
              RETURN NEW;
            END $$`)
          yield* sql`CREATE TRIGGER archive_commit_crash BEFORE UPDATE ON archive_objects FOR EACH ROW
            WHEN (OLD.state = 'pending' AND NEW.state = 'committed') EXECUTE FUNCTION archive_commit_crash()`
          const crash = yield* (yield* makeArchiver(config)).runOnce.pipe(Effect.exit)
          assert.strictEqual(crash._tag, "Failure", "the run fails at the commit")

          const committed = (yield* Effect.forEach(users, (user) =>
            ledger.objectsOverlapping(user, 0, Date.parse("9999-01-01T00:00:00Z"))
          )).flat()
          // Two groups are in flight: whichever committed first (one object or two) went through.
          assert.oneOf(committed.length, [1, 2], "the objects of the group committed first")
          assert.isNotEmpty(yield* ledger.pending, "the failed group's objects are still pending")
          const archived = (yield* archivedRows(config)).filter((row) =>
            committed.some((object) => object.key === row.object)
          )
          const place = (row: Keyed) => `${row.sensor_id}|${row.timestamp}`
          assert.deepStrictEqual(
            [...(yield* hotRows(users)).map(place), ...archived.map(place)].sort(),
            before.map(place).sort(),
            "every reading is hot or in a committed object, and in one place only"
          )

          yield* sql`DROP TRIGGER archive_commit_crash ON archive_objects`
          const rerun = yield* (yield* makeArchiver(config)).runOnce
          yield* assertArchived(config, before, users, rerun.cutoff)
          assert.deepStrictEqual(yield* ledger.pending, [], "nothing left pending")
        })
      ).pipe(Effect.orDie)
  )

  // One object of a group reads back wrong: its rows stay hot and its object is removed, while the other
  // objects of its group, verified, are committed; the run then fails, and the next run archives the rest.
  it.live(
    `${name}: an object that fails its read-back leaves its rows hot, and the other objects of its group are committed`,
    () =>
      provide(
        Effect.gen(function* () {
          const { config, users, before } = yield* setUp(1000, 2)
          const store = yield* ArchiveStore
          const ledger = yield* ArchiveLedger
          const oldest = before[0]!
          const [first, second] = [...users].sort()
          const day = dayOf(oldest.timestamp)
          const broken = `/date=${day}/user=${first}/`
          const readsBackNothing = ArchiveStore.of({
            ...store,
            get: (key) => (key.includes(broken) ? Effect.succeed(undefined) : store.get(key))
          })
          const failed = yield* (yield* makeArchiver(config).pipe(
            Effect.provideService(ArchiveStore, readsBackNothing)
          )).runOnce.pipe(Effect.flip)
          assert.strictEqual(failed._tag, "ArchiveVerificationFailed")

          const onDay = (row: ReadingRecord, user: UserId) => row.user_id === user && dayOf(row.timestamp) === day
          const hot = yield* hotRows(users)
          assert.deepStrictEqual(
            hot.filter((row) => onDay(row, first!)),
            before.filter((row) => onDay(row, first!)),
            "the object that failed its check keeps its rows hot"
          )
          assert.deepStrictEqual(
            (yield* store.list(`${config.prefix}${broken}`)).map((object) => object.key),
            [],
            "and its object is removed"
          )
          assert.deepStrictEqual(
            hot.filter((row) => onDay(row, second!)),
            [],
            "the other object of its group is committed"
          )
          assert.deepStrictEqual(
            (yield* ledger.objectsOverlapping(second!, dayStart(day), nextDayStart(day))).map(
              (object) => object.row_count
            ),
            [before.filter((row) => onDay(row, second!)).length]
          )

          const rerun = yield* (yield* makeArchiver(config)).runOnce
          yield* assertArchived(config, before, users, rerun.cutoff)
        })
      ).pipe(Effect.orDie)
  )

  // The first run has written and verified its first objects when its lock connection is cut; the run goes
  // on. A second run takes the lock, removes the first run's uncommitted objects, and either archives
  // everything (writing the same keys again) or crashes right after its recovery. The first run's commits
  // must then be refused: it would remove hot rows whose objects are gone, or, finding its rows gone, remove
  // the object the second run committed.
  for (const [secondRun, crashes] of [
    ["archives everything", false],
    ["crashes after its recovery, and a third run archives everything", true]
  ] as const) {
    // Cutting the lock's connection takes a second session, beside the one the paused run holds.
    twoSessions(`a run whose lock is lost before it commits is fenced off while a second run ${secondRun}`, () =>
      provide(
        Effect.gen(function* () {
          const { config, users, before } = yield* setUp(10)
          const store = yield* ArchiveStore
          const verified = yield* Deferred.make<void>()
          const resume = yield* Deferred.make<void>()
          // Each of the first run's objects is read back (the verification's read), then waits for the test.
          const pausedAfterReadBack = ArchiveStore.of({
            ...store,
            get: (key) =>
              store
                .get(key)
                .pipe(
                  Effect.tap(() =>
                    key.endsWith(".parquet")
                      ? Deferred.succeed(verified, undefined).pipe(Effect.andThen(Deferred.await(resume)))
                      : Effect.void
                  )
                )
          })
          const first = yield* makeArchiver(config).pipe(Effect.provideService(ArchiveStore, pausedAfterReadBack))
          const firstRun = yield* first.runOnce.pipe(
            Effect.match({ onSuccess: () => "succeeded", onFailure: (error) => error._tag }),
            Effect.forkChild
          )
          yield* Deferred.await(verified)
          assert.strictEqual(yield* cutLockConnection, 1, "the first run held the lock")

          const second = yield* makeArchiver(config).pipe(
            Effect.provideService(ArchiveStore, crashes ? crashingStore(store, /\.parquet$/, 1) : store)
          )
          const secondOutcome = yield* second.runOnce.pipe(Effect.exit)
          assert.strictEqual(secondOutcome._tag, crashes ? "Failure" : "Success")

          yield* Deferred.succeed(resume, undefined)
          const firstOutcome = yield* Fiber.join(firstRun)
          const last =
            secondOutcome._tag === "Success" ? secondOutcome.value : yield* (yield* makeArchiver(config)).runOnce
          yield* assertArchived(config, before, users, last.cutoff)
          assert.deepStrictEqual(yield* (yield* ArchiveLedger).pending, [], "nothing left pending")
          assert.isAbove(last.recovered, 0, "the first run's (or the crashed run's) uncommitted objects were removed")
          assert.strictEqual(firstOutcome, "ArchiverLeaseLost", "the first run stopped at its first commit")
        })
      )
    )
  }

  it.live(
    `${name}: GET readings over the retention boundary pages hot and archived readings together, none missing or repeated`,
    () =>
      provide(
        Effect.gen(function* () {
          const { config, users, before } = yield* setUp(10)
          yield* (yield* makeArchiver(config)).runOnce
          const query = yield* ReadingsQuery.pipe(Effect.provide(ReadingsQuery.layer))
          const toReading = (row: ReadingRecord) => new Reading({ ...row })
          for (const user of users) {
            const mine = before.filter((row) => row.user_id === user)
            for (const sensor of [undefined, mine[1]!.sensor_id]) {
              const pages: Array<Reading> = []
              let cursor: string | undefined
              do {
                const page = yield* query.list({
                  user_id: user,
                  from: mine[0]!.timestamp,
                  to: mine[mine.length - 1]!.timestamp + 1,
                  sensor_id: sensor,
                  limit: 7,
                  cursor
                })
                pages.push(...page.items)
                cursor = page.next_cursor ?? undefined
              } while (cursor !== undefined)
              assert.deepStrictEqual(
                pages,
                mine.filter((row) => sensor === undefined || row.sensor_id === sensor).map(toReading)
              )
            }
          }
        })
      )
  )

  // Issue 15, item 4. An archived key gets a new value, an archived day gets a key it never had, and the
  // first event is delivered again, before and after the fold: none may enter the hot store (a second copy
  // beside the archived one), and the read path must show each key once, with the value the conflict rule
  // gives, the same before the archiver folds the events in as after.
  it.live(`${name}: late events for archived days are queued, read once with their value, and folded in`, () =>
    provide(
      Effect.gen(function* () {
        const { config, before } = yield* setUp(10)
        const readings = yield* ReadingStore
        const ledger = yield* ArchiveLedger
        const store = yield* ArchiveStore
        const archiver = yield* makeArchiver(config)
        const first = yield* archiver.runOnce
        const old = before[0]!
        assert.isBelow(old.timestamp, first.cutoff)
        assert.strictEqual(old.source, "SENSOR")
        const day = dayOf(old.timestamp)
        const [from, to] = [dayStart(day), nextDayStart(day)]
        const archivedBefore = yield* readAll(old.user_id, from, to)
        assert.deepStrictEqual(
          atKey(archivedBefore, old).map((r) => r.glucose_value),
          [old.glucose_value]
        )

        const newValue: ReadingWrite = {
          event_id: eventId(),
          sensor_id: old.sensor_id,
          user_id: old.user_id,
          timestamp: old.timestamp,
          glucose_value: old.glucose_value + 1,
          source: "SENSOR",
          position: { partition: 0, offset: 1_000 }
        }
        const newKey: ReadingWrite = {
          ...newValue,
          event_id: eventId(),
          timestamp: old.timestamp - 60_000,
          glucose_value: 77
        }
        yield* readings.upsert([newValue, newKey])
        for (const key of [newValue, newKey]) {
          assert.isUndefined(yield* readings.get(key.user_id, key.sensor_id, key.timestamp), "no hot copy")
        }
        assert.deepStrictEqual(
          (yield* ledger.lateEvents(old.user_id, from, to)).map((event) => event.event_id).sort(),
          [newValue.event_id, newKey.event_id].sort()
        )
        const beforeFold = yield* readAll(old.user_id, from, to)
        assert.strictEqual(beforeFold.length, archivedBefore.length + 1, "one key more, none twice")
        const updated = atKey(beforeFold, old)
        assert.deepStrictEqual(
          updated.map((r) => [r.glucose_value, r.version, r.id]),
          [[old.glucose_value + 1, 2, old.id]]
        )
        assert.deepStrictEqual(
          atKey(beforeFold, newKey).map((r) => [r.glucose_value, r.version]),
          [[77, 1]]
        )

        // A redelivery of the same event changes nothing: not the queue, not what is read.
        yield* readings.upsert([newValue])
        assert.strictEqual((yield* ledger.lateEvents(old.user_id, from, to)).length, 2)
        assert.deepStrictEqual(yield* readAll(old.user_id, from, to), beforeFold)

        const objectsBefore = (yield* store.list(`${config.prefix}/date=${day}/user=${old.user_id}/`)).map((o) => o.key)
        const second = yield* archiver.runOnce
        assert.strictEqual(second.lateEvents, 2)
        assert.strictEqual(second.replacedObjects, objectsBefore.length)
        assert.deepStrictEqual(yield* ledger.lateEvents(old.user_id, from, to), [], "the queue is empty")
        assert.deepStrictEqual(yield* readAll(old.user_id, from, to), beforeFold, "the same before and after the fold")
        const rows = yield* archivedRows(config)
        const objectsAfter = (yield* store.list(`${config.prefix}/date=${day}/user=${old.user_id}/`)).map((o) => o.key)
        assert.isTrue(
          objectsBefore.every((key) => !objectsAfter.includes(key)),
          "the replaced objects are removed"
        )
        assert.deepStrictEqual(
          rows
            .filter((row) => row.sensor_id === old.sensor_id && row.timestamp === old.timestamp)
            .map((r) => [r.glucose_value, r.event_id]),
          [[old.glucose_value + 1, newValue.event_id]],
          "the object holds the new value, once"
        )
        assert.deepStrictEqual(
          rows
            .filter((row) => row.sensor_id === newKey.sensor_id && row.timestamp === newKey.timestamp)
            .map((r) => r.glucose_value),
          [77]
        )
        assert.strictEqual(
          new Set(rows.map((row) => `${row.sensor_id}|${row.timestamp}`)).size,
          rows.length,
          "no key twice"
        )
        const history = yield* readings.history(old.sensor_id, old.timestamp)
        assert.deepStrictEqual(
          history.map((r) => [r.glucose_value, r.version]),
          [[old.glucose_value, 1]],
          "the superseded value is kept"
        )
        const manifest = JSON.parse(new TextDecoder().decode((yield* store.get(manifestKey(config.prefix, day)))!))
        assert.deepStrictEqual(
          (manifest.objects as Array<{ key: string }>)
            .map((entry) => entry.key)
            .filter((key) => key.includes(`/user=${old.user_id}/`))
            .sort(),
          [...objectsAfter].sort(),
          "the manifest lists the replacements"
        )

        // Delivered again after the fold: queued, read the same, and folded without a new object.
        yield* readings.upsert([newValue])
        assert.isUndefined(yield* readings.get(old.user_id, old.sensor_id, old.timestamp))
        assert.deepStrictEqual(yield* readAll(old.user_id, from, to), beforeFold)
        const third = yield* archiver.runOnce
        assert.strictEqual(third.lateEvents, 1)
        assert.strictEqual(third.replacedObjects, 0)
        assert.deepStrictEqual(yield* ledger.lateEvents(old.user_id, from, to), [])
        assert.deepStrictEqual(yield* archivedRows(config), rows)
      })
    )
  )

  it.live(
    `${name}: a reading at the sensor's limit keeps its flag through the archive, and a late event that changes the flag is folded in`,
    () =>
      provide(
        Effect.gen(function* () {
          const { config, before } = yield* setUp(10)
          const readings = yield* ReadingStore
          const old = before.find((row) => row.source === "SENSOR")!
          const flagged = (timestamp: number, glucose_value: number, sensor_limit: "LO" | "HI"): ReadingWrite => ({
            event_id: eventId(),
            sensor_id: old.sensor_id,
            user_id: old.user_id,
            timestamp,
            glucose_value,
            source: "SENSOR",
            sensor_limit
          })
          // Two keys of an archived day, between the seeded readings (every two hours): LO, then HI.
          const low = flagged(old.timestamp + 5 * 60_000, 39, "LO")
          const high = flagged(old.timestamp + 10 * 60_000, 401, "HI")
          yield* readings.upsert([low, high])
          const archiver = yield* makeArchiver(config)
          yield* archiver.runOnce
          for (const key of [low, high]) {
            assert.isUndefined(yield* readings.get(key.user_id, key.sensor_id, key.timestamp), "archived")
          }
          const limitsIn = (rows: ReadonlyArray<Pick<ReadingRecord, "sensor_id" | "timestamp" | "sensor_limit">>) =>
            [low, high].map((key) => atKey(rows as ReadonlyArray<Reading>, key).map((row) => row.sensor_limit))
          assert.deepStrictEqual(limitsIn(yield* archivedRows(config)), [["LO"], ["HI"]], "the objects hold the flags")
          const day = dayOf(old.timestamp)
          const [from, to] = [dayStart(day), nextDayStart(day)]
          assert.deepStrictEqual(limitsIn(yield* readAll(old.user_id, from, to)), [["LO"], ["HI"]], "read back")
          const unflagged = (yield* readAll(old.user_id, from, to)).filter((r) => r.sensor_limit === undefined)
          assert.isTrue(
            unflagged.every((r) => !("sensor_limit" in r)),
            "an ordinary reading has no sensor_limit key"
          )

          // The sensor was back in range: a late event for the LO key, the same value without the flag.
          const corrected: ReadingWrite = { ...low, event_id: eventId(), sensor_limit: undefined }
          yield* readings.upsert([corrected])
          const beforeFold = yield* readAll(old.user_id, from, to)
          assert.deepStrictEqual(
            atKey(beforeFold, low).map((r) => [r.glucose_value, r.sensor_limit, r.version]),
            [[39, undefined, 2]],
            "the late event shows before its fold: the flag is content, so a new version"
          )
          yield* archiver.runOnce
          assert.deepStrictEqual(yield* readAll(old.user_id, from, to), beforeFold, "the same after the fold")
          assert.deepStrictEqual(limitsIn(yield* archivedRows(config)), [[undefined], ["HI"]])
          const history = yield* readings.history(low.sensor_id, low.timestamp)
          assert.deepStrictEqual(
            history.map((r) => [r.glucose_value, r.sensor_limit, r.version]),
            [[39, "LO", 1]],
            "the flagged value is kept in the history"
          )
        })
      )
  )

  it.live(
    `${name}: a late event for a month whose partition was dropped is queued, not refused, and no partition comes back`,
    () =>
      provide(
        Effect.gen(function* () {
          const readings = yield* ReadingStore
          const ledger = yield* ArchiveLedger
          const run = `p${Date.now().toString(36)}${runCounter++}`
          const config: ArchiverConfig = {
            prefix: `test-archive/${run}`,
            maxRowsPerObject: 10,
            concurrency: 1,
            groupObjects: 4
          }
          const user = UserId.make(`${run}-u`)
          const sensor = SensorId.make(`${run}-s`)
          const march = Date.parse("2001-03-10T08:00:00.000Z")
          const write = (timestamp: number, value: number): ReadingWrite => ({
            event_id: eventId(),
            sensor_id: sensor,
            user_id: user,
            timestamp,
            glucose_value: value,
            source: "SENSOR"
          })
          yield* readings.upsert([write(march, 100), write(march + HOUR, 101)])
          // The month's partition (PostgreSQL) or the chunk (TimescaleDB) holding the readings.
          const part = yield* partHolding(march)
          assert.isDefined(part)
          const partitionExists = Effect.map(partHolding(march), (name) => name !== undefined)
          const first = yield* (yield* makeArchiver(config)).runOnce
          assert.include(first.droppedPartitions, part)
          assert.isFalse(yield* partitionExists)

          // Before the fix this failed (no partition for the row): the processor would dead-letter it.
          const late = write(march, 140)
          yield* readings.upsert([late])
          assert.isFalse(yield* partitionExists, "the dropped partition is not made again")
          assert.isUndefined(yield* readings.get(user, sensor, march), "no hot copy")
          assert.deepStrictEqual(
            (yield* ledger.lateEvents(user, march, march + 1)).map((event) => event.event_id),
            [late.event_id]
          )
          const day = [dayStart(dayOf(march)), nextDayStart(dayOf(march))] as const
          const expected = [
            [march, 140],
            [march + HOUR, 101]
          ]
          assert.deepStrictEqual(
            (yield* readAll(user, ...day)).map((r) => [r.timestamp, r.glucose_value]),
            expected
          )
          const second = yield* (yield* makeArchiver(config)).runOnce
          assert.strictEqual(second.lateEvents, 1)
          assert.isFalse(yield* partitionExists)
          assert.deepStrictEqual(
            (yield* readAll(user, ...day)).map((r) => [r.timestamp, r.glucose_value]),
            expected
          )
          assert.deepStrictEqual(
            (yield* archivedRows(config)).map((r) => [r.timestamp, r.glucose_value]),
            expected
          )
        })
      )
  )

  // The commit of a chunk and an event for one of its keys, at once: the commit is held on the key's row
  // (a lock the test takes) after it took what it needs, the event arrives, then the row is let go. The
  // event must end queued: without the day lock, the upsert saw the key hot, waited on the row the commit
  // was removing, and inserted it again once the commit was done: one key hot and archived.
  // The test holds a row lock on a second session while the commit waits on it.
  twoSessions("an event racing the commit of its key's chunk is queued, never left hot beside the archive", () =>
    provide(
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const readings = yield* ReadingStore
        const ledger = yield* ArchiveLedger
        const run = `r${Date.now().toString(36)}${runCounter++}`
        const user = UserId.make(`${run}-u`)
        const sensor = SensorId.make(`${run}-s`)
        const april = Date.parse("2001-04-10T08:00:00.000Z")
        const write = (timestamp: number, value: number): ReadingWrite => ({
          event_id: eventId(),
          sensor_id: sensor,
          user_id: user,
          timestamp,
          glucose_value: value,
          source: "SENSOR"
        })
        yield* readings.upsert([write(april, 100), write(april + HOUR, 101), write(april + 2 * HOUR, 102)])
        const rows = yield* ledger.readChunk({ user_id: user, from: april, to: april + DAY, limit: 100 })
        const bytes = yield* encodeReadings(rows)
        const object = {
          key: objectKey(`test-archive/${run}`, dayOf(april), user, checksumOf(rows)),
          day: dayOf(april),
          user_id: user,
          row_count: rows.length,
          checksum: checksumOf(rows),
          first_timestamp: rows[0]!.timestamp,
          last_timestamp: rows[rows.length - 1]!.timestamp
        }
        const key = rows[1]!
        const result = yield* ledger.exclusive((lease) =>
          Effect.scoped(
            Effect.gen(function* () {
              yield* ledger.begin(lease, object)
              yield* (yield* ArchiveStore).put(object.key, bytes)
              const holder = yield* sql.reserve
              yield* holder.executeRaw("BEGIN", [])
              yield* holder.execute(
                `SELECT 1 FROM glucose_readings WHERE sensor_id = $1 AND "timestamp" = $2 FOR UPDATE`,
                [key.sensor_id, new Date(key.timestamp).toISOString()],
                undefined
              )
              const commit = yield* ledger.commit(lease, object, rows).pipe(Effect.forkChild)
              yield* waitUntil(
                "the commit waits on the held row",
                Effect.map(lockWaiters, (n) => n === 1)
              )
              const late = write(key.timestamp, 150)
              const upsert = yield* readings.upsert([late]).pipe(Effect.forkChild)
              yield* waitUntil(
                "the event waits too",
                Effect.map(lockWaiters, (n) => n === 2)
              )
              yield* holder.executeRaw("ROLLBACK", [])
              yield* Fiber.join(commit)
              yield* Fiber.join(upsert)
              return late
            })
          )
        )
        assert.isUndefined(yield* readings.get(user, sensor, key.timestamp), "no hot copy beside the archived one")
        assert.deepStrictEqual(
          (yield* ledger.lateEvents(user, april, april + DAY)).map((event) => event.event_id),
          [result.event_id]
        )
        assert.deepStrictEqual(
          (yield* readAll(user, april, april + DAY)).map((r) => [r.timestamp, r.glucose_value]),
          [
            [april, 100],
            [april + HOUR, 150],
            [april + 2 * HOUR, 102]
          ]
        )
      })
    ).pipe(Effect.orDie)
  )
}
