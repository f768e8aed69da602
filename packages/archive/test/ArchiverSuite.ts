import { EventId, HotRetention, Reading, SensorId, UserId } from "@dexmon/domain"
import {
  ArchiveLedger,
  ArchiveStore,
  type ReadingRecord,
  ReadingStore,
  type ReadingWrite,
  SqlArchiveLedger
} from "@dexmon/ports"
import { assert, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Fiber, Layer } from "effect"
import { SqlClient } from "effect/sql"
import {
  type ArchiverConfig,
  checksumOf,
  dayOf,
  decodeReadings,
  makeArchiver,
  manifestKey,
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
const eventId = () => EventId.make(`01900000-0000-7000-8000-${(++eventCounter).toString(16).padStart(12, "0")}`)

/** Readings of three users on two sensors each, every two hours over the last 14 days (at :30, so no cutoff lands on one). */
const seedWrites = (run: string, now: number): ReadonlyArray<ReadingWrite> => {
  const start = Math.floor((now - 14 * DAY) / HOUR) * HOUR + 30 * 60_000
  const writes: Array<ReadingWrite> = []
  for (let u = 0; u < 3; u++) {
    for (let t = start; t < now - HOUR; t += 2 * HOUR) {
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

const byPosition = (a: ReadingRecord, b: ReadingRecord) =>
  a.timestamp - b.timestamp || (a.sensor_id < b.sensor_id ? -1 : a.sensor_id > b.sensor_id ? 1 : 0)

/** Every row of the run's users in the hot store, as the archiver would read them. */
const hotRows = (users: ReadonlyArray<UserId>) =>
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
const assertArchived = Effect.fnUntraced(function* (
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
const crashingStore = (store: typeof ArchiveStore.Service, which: RegExp, crashAt: number) => {
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
      AND objid::bigint = ${SqlArchiveLedger.ARCHIVER_LOCK}
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`
  return ended.filter((row) => row.ended).length
}).pipe(Effect.orDie)

const setUp = Effect.fnUntraced(function* (maxRowsPerObject: number) {
  const run = `a${Date.now().toString(36)}${runCounter++}`
  const config: ArchiverConfig = { prefix: `test-archive/${run}`, maxRowsPerObject, concurrency: 3 }
  const now = yield* Clock.currentTimeMillis
  const writes = seedWrites(run, now)
  yield* (yield* ReadingStore).upsert(writes)
  const users = [...new Set(writes.map((write) => write.user_id))]
  const before = yield* hotRows(users)
  return { config, users, before }
})

const retention = Layer.succeed(HotRetention, HotRetention.of({ millis: RETENTION_DAYS * DAY }))

/**
 * The archiver on one set of stores, checked end to end. `stores` is built
 * afresh for every test: each test owns its database and archive prefix.
 */
export const archiverSuite = (name: string, stores: () => Layer.Layer<ArchiveStores, unknown>) => {
  const provide = <A, E>(effect: Effect.Effect<A, E, ArchiveStores | HotRetention>) =>
    effect.pipe(Effect.provide(Layer.merge(stores(), retention)))

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
          const second = yield* archiver.runOnce
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

  // The first run has written and verified its first objects when its lock connection is cut; the run goes
  // on. A second run takes the lock, removes the first run's uncommitted objects, and either archives
  // everything (writing the same keys again) or crashes right after its recovery. The first run's commits
  // must then be refused: it would remove hot rows whose objects are gone, or, finding its rows gone, remove
  // the object the second run committed.
  for (const [secondRun, crashes] of [
    ["archives everything", false],
    ["crashes after its recovery, and a third run archives everything", true]
  ] as const) {
    it.live(`${name}: a run whose lock is lost before it commits is fenced off while a second run ${secondRun}`, () =>
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
}
