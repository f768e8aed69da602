import {
  applyConflictRule,
  computeEtag,
  EventId,
  type ReadingState,
  SensorId,
  type Source,
  UserId
} from "@dexmon/domain"
import { assert, layer } from "@effect/vitest"
import { Effect, type Layer } from "effect"
import { type ReadingQuery, ReadingStore, type ReadingWrite } from "../../src/index.ts"

let runCounter = 0
const newRun = () => `r${Date.now().toString(36)}${runCounter++}`
const user = UserId.make("contract-user")
const t0 = Date.parse("2026-11-20T00:00:00.000Z")
/** A UUIDv7-shaped id whose order is the order of `n`. */
const eventId = (n: number) => EventId.make(`01900000-0000-7000-8000-${n.toString(16).padStart(12, "0")}`)
const write = (sensor: string, value: number, source: Source, n: number, timestamp = t0): ReadingWrite => ({
  event_id: eventId(n),
  sensor_id: SensorId.make(sensor),
  user_id: user,
  timestamp,
  glucose_value: value,
  source
})
const everything = (sensor?: string): ReadingQuery => ({
  user_id: user,
  from: t0 - 86_400_000,
  to: t0 + 86_400_000,
  sensor_id: sensor === undefined ? undefined : SensorId.make(sensor),
  limit: 1000
})

/** The domain's conflict rule replayed in memory: what the store must end up holding. */
export const reference = (writes: ReadonlyArray<ReadingWrite>) => {
  const table = new Map<string, ReadingState>()
  for (const w of writes) {
    const key = `${w.sensor_id}|${w.timestamp}`
    const outcome = applyConflictRule(table.get(key), w)
    if (outcome._tag !== "Keep") table.set(key, outcome.next)
  }
  return table
}

const assertMatchesReference = (sensor: string, writes: ReadonlyArray<ReadingWrite>) =>
  Effect.gen(function* () {
    const store = yield* ReadingStore
    const stored = (yield* store.list(everything(sensor))).items
    const expected = [...reference(writes).values()].sort((a, b) => a.timestamp - b.timestamp)
    assert.deepStrictEqual(
      stored.map((r) => [r.timestamp, r.glucose_value, r.source, r.sensor_limit, r.version, r.etag]),
      expected.map((s) => [
        s.timestamp,
        s.glucose_value,
        s.source,
        s.sensor_limit,
        s.version,
        computeEtag(s, s.version)
      ])
    )
  })

/** How a run of a contract suite is limited by the server it runs on. */
export interface ContractOptions {
  /**
   * The server serves one session at a time (PGlite's TimescaleDB, a pool of one connection): the cases
   * that need two sessions at once are left out, and the suite's title names them.
   */
  readonly singleSession?: boolean
}

/** The title of a suite run, naming the cases a single-session run leaves out. */
export const suiteTitle = (title: string, options: ContractOptions, twoSessions: ReadonlyArray<string>) =>
  options.singleSession === true
    ? `${title} (one session at a time; runs on PostgreSQL only: ${twoSessions.map((c) => `"${c}"`).join(", ")})`
    : title

const twoWriters =
  "two writers upserting the same keys at once, in opposite orders, end in the right state without deadlock"

/** The behaviour every layer of the readings-store port must have. */
export const readingStoreContract = (
  name: string,
  storeLayer: Layer.Layer<ReadingStore, unknown>,
  options: ContractOptions = {}
) =>
  layer(storeLayer, { timeout: 120_000, excludeTestServices: true })(
    suiteTitle(`ReadingStore contract: ${name}`, options, [twoWriters]),
    (it) => {
      it.effect("applies the conflict rule for every pair of stored and incoming source, value and event age", () =>
        Effect.gen(function* () {
          const store = yield* ReadingStore
          const storedCases: ReadonlyArray<readonly [Source, number] | undefined> = [
            undefined,
            ["SENSOR", 100],
            ["MANUAL", 100]
          ]
          const incomingCases: ReadonlyArray<readonly [Source, number]> = [
            ["SENSOR", 100],
            ["SENSOR", 110],
            ["MANUAL", 100],
            ["MANUAL", 110]
          ]
          for (const stored of storedCases) {
            for (const [source, value] of incomingCases) {
              for (const incomingIsNewer of [true, false]) {
                const sensor = newRun()
                const writes = [
                  ...(stored === undefined ? [] : [write(sensor, stored[1], stored[0], 50)]),
                  write(sensor, value, source, incomingIsNewer ? 60 : 40)
                ]
                for (const w of writes) yield* store.upsert([w])
                yield* assertMatchesReference(sensor, writes)
              }
            }
          }
        })
      )

      it.effect(
        "keeps a sensor limit (LO, HI) with its reading: the flag is content, so the same value without it (or with the other) replaces it at a new version, into the history, and a replay changes nothing",
        () =>
          Effect.gen(function* () {
            const store = yield* ReadingStore
            const sensor = newRun()
            const flagged = (value: number, sensor_limit: "LO" | "HI" | undefined, n: number, timestamp = t0) => ({
              ...write(sensor, value, "SENSOR", n, timestamp),
              ...(sensor_limit === undefined ? {} : { sensor_limit })
            })
            const writes = [
              flagged(39, "LO", 1),
              flagged(401, "HI", 2, t0 + 300_000),
              flagged(39, "LO", 3),
              flagged(39, undefined, 4, t0 + 300_000),
              flagged(39, "LO", 5, t0 + 300_000)
            ]
            const summaries = []
            for (const w of writes) summaries.push(yield* store.upsert([w]))
            assert.deepStrictEqual(
              summaries.map((s) => [s.inserted, s.replaced, s.unchanged]),
              [
                [1, 0, 0],
                [1, 0, 0],
                [0, 0, 1],
                [0, 1, 0],
                [0, 1, 0]
              ]
            )
            yield* assertMatchesReference(sensor, writes)
            const [low, last] = (yield* store.list(everything(sensor))).items
            assert.strictEqual(low!.sensor_limit, "LO")
            assert.deepStrictEqual([last!.glucose_value, last!.sensor_limit, last!.version], [39, "LO", 3])
            assert.deepStrictEqual(yield* store.get(user, SensorId.make(sensor), t0), low)
            const history = yield* store.history(SensorId.make(sensor), t0 + 300_000)
            assert.deepStrictEqual(
              history.map((r) => [r.glucose_value, r.sensor_limit, r.version]),
              [
                [401, "HI", 1],
                [39, undefined, 2]
              ]
            )
          })
      )

      it.effect(
        "MANUAL 100 then SENSOR 110 in one batch gives SENSOR 110 at version 2 and keeps MANUAL 100 in history",
        () =>
          Effect.gen(function* () {
            const store = yield* ReadingStore
            const sensor = newRun()
            const summary = yield* store.upsert([write(sensor, 100, "MANUAL", 1), write(sensor, 110, "SENSOR", 2)])
            assert.deepStrictEqual(summary, { inserted: 1, replaced: 1, unchanged: 0 })
            const later = yield* store.upsert([write(sensor, 90, "MANUAL", 3)])
            assert.deepStrictEqual(later, { inserted: 0, replaced: 0, unchanged: 1 })
            const [reading] = (yield* store.list(everything(sensor))).items
            assert.strictEqual(reading!.source, "SENSOR")
            assert.strictEqual(reading!.glucose_value, 110)
            assert.strictEqual(reading!.version, 2)
            const single = yield* store.get(user, SensorId.make(sensor), t0)
            assert.deepStrictEqual(single, reading)
            assert.isUndefined(yield* store.get(UserId.make("someone-else"), SensorId.make(sensor), t0))
            assert.isUndefined(yield* store.get(user, SensorId.make(sensor), t0 + 1))
            const history = yield* store.history(SensorId.make(sensor), t0)
            assert.deepStrictEqual(
              history.map((r) => [r.source, r.glucose_value, r.version]),
              [["MANUAL", 100, 1]]
            )
          })
      )

      it.effect(
        "any event sequence, in any batching, redelivered from any point, ends where the domain rule says",
        () =>
          Effect.gen(function* () {
            const store = yield* ReadingStore
            // A deterministic pseudo-random generator, so a failure can be replayed.
            let seed = 42
            const random = (n: number) => {
              seed = (seed * 1103515245 + 12345) % 2147483648
              return Math.floor(seed / 65_536) % n
            }
            for (let run = 0; run < 30; run++) {
              const sensor = newRun()
              // Appended in array order (the positions); stamped by receivers whose clocks disagree (the ids).
              const writes = Array.from({ length: 1 + random(12) }, (_, i) => ({
                ...write(
                  sensor,
                  [90, 100, 110][random(3)]!,
                  random(2) === 0 ? "SENSOR" : "MANUAL",
                  random(1000) * 100 + i,
                  t0 + random(3) * 300_000
                ),
                position: { partition: 3, offset: 10_000 + i }
              }))
              const cut = random(writes.length + 1)
              const delivered = [...writes, ...writes.slice(cut)]
              for (let i = 0; i < delivered.length; ) {
                const size = 1 + random(4)
                yield* store.upsert(delivered.slice(i, i + size))
                i += size
              }
              yield* assertMatchesReference(sensor, writes)
            }
          })
      )

      it.effect(
        "the later append wins whatever the event ids say; without positions on both, the event id decides",
        () =>
          Effect.gen(function* () {
            const store = yield* ReadingStore
            const sensor = newRun()
            const at = (offset: number) => ({ partition: 1, offset })
            // Appended first by a receiver whose clock ran ahead: the larger event id, the smaller offset.
            const first = { ...write(sensor, 100, "SENSOR", 900), position: at(7) }
            const second = { ...write(sensor, 120, "SENSOR", 100), position: at(8) }
            yield* store.upsert([first])
            yield* store.upsert([second])
            // A redelivery of the first, and its replay from the DLQ (same first position), change nothing.
            assert.deepStrictEqual(yield* store.upsert([first]), { inserted: 0, replaced: 0, unchanged: 1 })
            const [reading] = (yield* store.list(everything(sensor))).items
            assert.deepStrictEqual([reading!.glucose_value, reading!.version], [120, 2])
            yield* assertMatchesReference(sensor, [first, second, first])

            // A reading written without a position is compared by event id, both ways.
            const legacy = newRun()
            yield* store.upsert([write(legacy, 100, "SENSOR", 500)])
            yield* store.upsert([{ ...write(legacy, 130, "SENSOR", 400), position: at(9) }])
            yield* store.upsert([{ ...write(legacy, 140, "SENSOR", 600), position: at(10) }])
            const [kept] = (yield* store.list(everything(legacy))).items
            assert.deepStrictEqual([kept!.glucose_value, kept!.version], [140, 2])
          })
      )

      it.effect("stores a batch that mixes whole and fractional values (a meter may report 100.5) as given", () =>
        Effect.gen(function* () {
          const store = yield* ReadingStore
          const sensor = newRun()
          const values = [100, 100.5, 72, 64.25]
          yield* store.upsert(values.map((v, i) => write(sensor, v, "SENSOR", i, t0 + i * 300_000)))
          const page = yield* store.list(everything(sensor))
          assert.deepStrictEqual(
            page.items.map((r) => r.glucose_value),
            values
          )
        })
      )

      it.effect("pages through a range in time order, each reading exactly once, only the caller's own", () =>
        Effect.gen(function* () {
          const store = yield* ReadingStore
          const sensor = newRun()
          yield* store.upsert(
            Array.from({ length: 25 }, (_, i) => write(sensor, 100 + i, "SENSOR", i, t0 + i * 300_000))
          )
          yield* store.upsert([
            { ...write(sensor, 120, "SENSOR", 99, t0 + 99 * 300_000), user_id: UserId.make("someone-else") }
          ])
          const seen: Array<number> = []
          let cursor: string | undefined
          do {
            const page = yield* store.list({ ...everything(sensor), limit: 7, cursor })
            assert.isTrue(page.items.length <= 7)
            seen.push(...page.items.map((r) => r.timestamp))
            cursor = page.next_cursor ?? undefined
          } while (cursor !== undefined)
          assert.deepStrictEqual(
            seen,
            Array.from({ length: 25 }, (_, i) => t0 + i * 300_000)
          )
        })
      )

      // Two transactions at once: on a server of one session the second would only queue behind the first.
      if (options.singleSession !== true)
        it.effect(twoWriters, () =>
          Effect.gen(function* () {
            const store = yield* ReadingStore
            const sensor = newRun()
            // Large enough batches that the two transactions overlap.
            const keys = Array.from({ length: 2000 }, (_, i) => t0 + i * 1_000)
            for (let round = 0; round < 10; round++) {
              const first = keys.map((t, i) => write(sensor, 100 + round, "SENSOR", round * 10_000 + 2 * i, t))
              const second = [...keys]
                .reverse()
                .map((t, i) => write(sensor, 200 + round, "SENSOR", round * 10_000 + 2 * i + 1, t))
              yield* Effect.all([store.upsert(first), store.upsert(second)], { concurrency: 2 })
            }
            const stored: Array<{ readonly timestamp: number; readonly glucose_value: number }> = []
            let cursor: string | undefined
            do {
              const page = yield* store.list({ ...everything(sensor), limit: 1000, cursor })
              stored.push(...page.items)
              cursor = page.next_cursor ?? undefined
            } while (cursor !== undefined)
            assert.strictEqual(stored.length, keys.length)
            // Per key the newest event id wins: the second writer's in the upper half, the first writer's below.
            for (const reading of stored) {
              const i = keys.indexOf(reading.timestamp)
              const firstId = 9 * 10_000 + 2 * i
              const secondId = 9 * 10_000 + 2 * (keys.length - 1 - i) + 1
              assert.strictEqual(reading.glucose_value, secondId > firstId ? 209 : 109, `key ${i}`)
            }
          })
        )

      it.effect("writes on both sides of a partition boundary land, and read back in order", () =>
        Effect.gen(function* () {
          const store = yield* ReadingStore
          const sensor = newRun()
          const boundary = Date.parse("2026-11-01T00:00:00.000Z")
          const around = [boundary - 1, boundary, boundary + 1, boundary - 300_000]
          yield* store.upsert(around.map((t, i) => write(sensor, 100 + i, "SENSOR", i, t)))
          const page = yield* store.list({
            user_id: user,
            from: boundary - 86_400_000,
            to: boundary + 86_400_000,
            sensor_id: SensorId.make(sensor),
            limit: 10
          })
          assert.deepStrictEqual(
            page.items.map((r) => r.timestamp),
            [...around].sort((a, b) => a - b)
          )
        })
      )

      it.effect("paging while writes continue returns every reading that was there exactly once", () =>
        Effect.gen(function* () {
          const store = yield* ReadingStore
          const sensor = newRun()
          const initial = Array.from({ length: 60 }, (_, i) => t0 + i * 600_000)
          yield* store.upsert(initial.map((t, i) => write(sensor, 100, "SENSOR", i, t)))
          const seen: Array<number> = []
          let cursor: string | undefined
          let n = 1000
          do {
            const page = yield* store.list({ ...everything(sensor), limit: 7, cursor })
            seen.push(...page.items.map((r) => r.timestamp))
            cursor = page.next_cursor ?? undefined
            // Between pages: new readings before and after the cursor, and changes to existing ones.
            const last = page.items[page.items.length - 1]?.timestamp ?? t0
            yield* store.upsert([
              write(sensor, 120, "SENSOR", n++, last - 300_000),
              write(sensor, 120, "SENSOR", n++, last + 300_000),
              write(sensor, 130, "SENSOR", n++, initial[n % initial.length]!)
            ])
          } while (cursor !== undefined)
          assert.strictEqual(new Set(seen).size, seen.length, "no reading twice")
          for (const t of initial) assert.include(seen, t)
          for (let i = 1; i < seen.length; i++) assert.isTrue(seen[i - 1]! < seen[i]!)
        })
      )

      it.effect("an event of another user for an existing reading changes nothing, whatever its source and age", () =>
        Effect.gen(function* () {
          const store = yield* ReadingStore
          const sensor = newRun()
          yield* store.upsert([write(sensor, 100, "MANUAL", 1)])
          const before = (yield* store.list(everything(sensor))).items
          const intruder = { ...write(sensor, 180, "SENSOR", 2), user_id: UserId.make("someone-else") }
          assert.deepStrictEqual(yield* store.upsert([intruder]), { inserted: 0, replaced: 0, unchanged: 1 })
          assert.deepStrictEqual((yield* store.list(everything(sensor))).items, before)
          assert.deepStrictEqual(yield* store.history(SensorId.make(sensor), t0), [])
        })
      )

      it.effect("refuses a cursor it did not issue", () =>
        Effect.gen(function* () {
          const store = yield* ReadingStore
          const error = yield* store.list({ ...everything(), cursor: "not-a-cursor" }).pipe(Effect.flip)
          assert.strictEqual(error._tag, "InvalidCursor")
        })
      )
    }
  )
