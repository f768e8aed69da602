import { SensorId, UserId } from "@dexmon/domain"
import { assert, layer } from "@effect/vitest"
import { Effect, type Layer } from "effect"
import { AlertStateStore, nextStateVersion, type SensorStateRow } from "../../src/index.ts"

let runCounter = 0
const newRun = () => `st${Date.now().toString(36)}${runCounter++}`
// A log partition of each test's own: `due` reads a whole partition.
const newPartition = () => (Date.now() % 1_000_000) * 100 + (runCounter++ % 100)
const t0 = Date.parse("2026-11-20T00:00:00.000Z")
const MINUTE = 60_000

/** The version of a state at a log position, with no random bits, so tests name it exactly. */
const at = (position: number) => nextStateVersion(position, undefined, 0)

const row = (
  run: string,
  sensor: string,
  version: bigint,
  fields: Partial<Omit<SensorStateRow, "sensor_id" | "version">> = {}
): SensorStateRow => ({
  sensor_id: SensorId.make(`${run}-${sensor}`),
  user_id: fields.user_id ?? UserId.make(`${run}-user`),
  log_partition: fields.log_partition ?? 0,
  state: fields.state ?? `{"sensor":"${sensor}"}`,
  check_at: fields.check_at === undefined ? t0 : fields.check_at,
  version
})

const sorted = (ids: ReadonlyArray<string>) => ids.toSorted()

/** The behaviour every layer of the alert-state port must have. */
export const alertStateStoreContract = (name: string, storeLayer: Layer.Layer<AlertStateStore, unknown>) =>
  layer(storeLayer, { timeout: 120_000, excludeTestServices: true })(`AlertStateStore contract: ${name}`, (it) => {
    it.effect("a first write inserts the row as given; an absent sensor is absent from the map", () =>
      Effect.gen(function* () {
        const store = yield* AlertStateStore
        const run = newRun()
        const first = row(run, "s1", at(7), { state: "first", check_at: t0 + MINUTE })
        yield* store.save([first])
        const loaded = yield* store.load([first.sensor_id, SensorId.make(`${run}-none`)])
        assert.deepStrictEqual([...loaded.entries()], [[first.sensor_id, first]])
        yield* store.save([])
        yield* store.ping
      })
    )

    it.effect(
      "a higher version replaces the row; a lower one arriving later changes nothing, and the rest of its batch is written",
      () =>
        Effect.gen(function* () {
          const store = yield* AlertStateStore
          const run = newRun()
          const [a1, b1] = [row(run, "a", at(1), { state: "a1" }), row(run, "b", at(1), { state: "b1" })]
          yield* store.save([a1, b1])
          const a2 = row(run, "a", at(5), { state: "a2", check_at: null, log_partition: 3 })
          yield* store.save([a2])
          assert.deepStrictEqual((yield* store.load([a1.sensor_id])).get(a1.sensor_id), a2)

          // In one batch: `a` from a zombie that decided fewer records, `b` newer, `c` new.
          const aStale = row(run, "a", at(4), { state: "a-stale" })
          const [b2, c1] = [row(run, "b", at(2), { state: "b2" }), row(run, "c", at(0), { state: "c1" })]
          yield* store.save([aStale, b2, c1])
          const loaded = yield* store.load([a1.sensor_id, b1.sensor_id, c1.sensor_id])
          assert.deepStrictEqual(loaded.get(a1.sensor_id), a2)
          assert.deepStrictEqual(loaded.get(b1.sensor_id), b2)
          assert.deepStrictEqual(loaded.get(c1.sensor_id), c1)
          // Versions are 64-bit: a position past 2^53 / 2^23 keeps its order.
          const far = row(run, "a", at(2 ** 39), { state: "far" })
          yield* store.save([far, row(run, "a", at(2 ** 39 - 1), { state: "just-before" })])
          yield* store.save([row(run, "a", at(2 ** 39 - 1), { state: "just-before" })])
          assert.deepStrictEqual((yield* store.load([a1.sensor_id])).get(a1.sensor_id), far)
        })
    )

    it.effect("a state changed again at the position it covers outranks it; the next record outranks both", () =>
      Effect.gen(function* () {
        const store = yield* AlertStateStore
        const run = newRun()
        const decided = row(run, "s", nextStateVersion(41, undefined, 3), { state: "record 41" })
        yield* store.save([decided])
        const ticked = row(run, "s", nextStateVersion(41, decided.version, 9), { state: "again at 41" })
        const tickedAgain = row(run, "s", nextStateVersion(41, ticked.version, 0), { state: "and again at 41" })
        const next = row(run, "s", nextStateVersion(42, tickedAgain.version, 0), { state: "record 42" })
        yield* store.save([tickedAgain])
        yield* store.save([ticked])
        assert.deepStrictEqual((yield* store.load([decided.sensor_id])).get(decided.sensor_id), tickedAgain)
        yield* store.save([next])
        yield* store.save([ticked])
        assert.deepStrictEqual((yield* store.load([decided.sensor_id])).get(decided.sensor_id), next)
      })
    )

    it.effect("a write retried after it went through leaves the same row", () =>
      Effect.gen(function* () {
        const store = yield* AlertStateStore
        const run = newRun()
        const first = row(run, "s", at(1), { state: "one" })
        yield* store.save([first])
        yield* store.save([first])
        const second = row(run, "s", at(2), { state: "two", check_at: t0 + 5 * MINUTE })
        yield* store.save([second])
        yield* store.save([second])
        assert.deepStrictEqual((yield* store.load([first.sensor_id])).get(first.sensor_id), second)
      })
    )

    it.effect("a batch that writes one sensor more than once keeps its highest version, in any order", () =>
      Effect.gen(function* () {
        const store = yield* AlertStateStore
        const run = newRun()
        const [v1, v3, v2] = [1, 3, 2].map((position) => row(run, "s", at(position), { state: `v${position}` })) as [
          SensorStateRow,
          SensorStateRow,
          SensorStateRow
        ]
        yield* store.save([v1, v3, v2])
        assert.deepStrictEqual((yield* store.load([v1.sensor_id])).get(v1.sensor_id), v3)
      })
    )

    it.effect(
      "due: a partition's sensors checked at or before now (in any order); a null check is never due; moves follow",
      () =>
        Effect.gen(function* () {
          const store = yield* AlertStateStore
          const run = newRun()
          const [p, q] = [newPartition(), newPartition()]
          // The port promises no order: compare sorted.
          const dueOf = (logPartition: number, now: number) =>
            store.due(logPartition, now).pipe(Effect.map((ids) => ids.toSorted()))
          const rows = {
            early: row(run, "early", at(1), { log_partition: p, check_at: t0 - MINUTE }),
            now: row(run, "now", at(1), { log_partition: p, check_at: t0 }),
            later: row(run, "later", at(1), { log_partition: p, check_at: t0 + MINUTE }),
            never: row(run, "never", at(1), { log_partition: p, check_at: null }),
            elsewhere: row(run, "elsewhere", at(1), { log_partition: q, check_at: t0 - MINUTE })
          }
          yield* store.save(Object.values(rows))
          assert.deepStrictEqual(yield* dueOf(p, t0), sorted([rows.early.sensor_id, rows.now.sensor_id]))
          assert.deepStrictEqual(yield* dueOf(p, t0 - MINUTE - 1), [])
          assert.deepStrictEqual(yield* dueOf(q, t0), sorted([rows.elsewhere.sensor_id]))
          assert.deepStrictEqual(yield* dueOf(newPartition(), t0), [])

          // Later, earlier, retired, and over to the other partition.
          yield* store.save([
            { ...rows.early, check_at: t0 + 2 * MINUTE, version: at(2) },
            { ...rows.later, check_at: t0 - 2 * MINUTE, version: at(2) },
            { ...rows.now, check_at: null, version: at(2) },
            { ...rows.never, check_at: t0 - 3 * MINUTE, log_partition: q, version: at(2) }
          ])
          assert.deepStrictEqual(yield* dueOf(p, t0), sorted([rows.later.sensor_id]))
          assert.deepStrictEqual(yield* dueOf(p, t0 + 2 * MINUTE), sorted([rows.later.sensor_id, rows.early.sensor_id]))
          assert.deepStrictEqual(yield* dueOf(q, t0), sorted([rows.never.sensor_id, rows.elsewhere.sensor_id]))
          // And back: the sensor's newest state decides, whatever its earlier ones said.
          yield* store.save([{ ...rows.never, check_at: t0 - 4 * MINUTE, log_partition: p, version: at(3) }])
          assert.deepStrictEqual(yield* dueOf(p, t0), sorted([rows.never.sensor_id, rows.later.sensor_id]))
          assert.deepStrictEqual(yield* dueOf(q, t0), sorted([rows.elsewhere.sensor_id]))
          // A late write of an older state moves no check: the stored state's entry stands.
          yield* store.save([{ ...rows.never, check_at: t0 - 5 * MINUTE, log_partition: q, version: at(2) }])
          assert.deepStrictEqual(yield* dueOf(p, t0), sorted([rows.never.sensor_id, rows.later.sensor_id]))
          assert.deepStrictEqual(yield* dueOf(q, t0), sorted([rows.elsewhere.sensor_id]))
        })
    )

    it.effect(
      "writers racing on the same sensors: each sensor ends at its highest version, whatever arrived last",
      () =>
        Effect.gen(function* () {
          const store = yield* AlertStateStore
          const run = newRun()
          const partition = newPartition()
          const sensors = Array.from({ length: 12 }, (_, i) => `s${i}`)
          const writers = 6
          // Writer w writes sensor i at position (w + i) % writers: each sensor's newest comes from another writer.
          const positionOf = (w: number, i: number) => (w + i) % writers
          yield* Effect.forEach(
            Array.from({ length: writers }, (_, w) => w),
            (w) => {
              const ordered = w % 2 === 0 ? sensors : sensors.toReversed()
              return store.save(
                ordered.map((s) => {
                  const i = Number(s.slice(1))
                  return row(run, s, at(positionOf(w, i)), {
                    state: `writer-${w}`,
                    log_partition: partition,
                    check_at: t0 + positionOf(w, i) * MINUTE
                  })
                })
              )
            },
            { concurrency: "unbounded", discard: true }
          )
          const loaded = yield* store.load(sensors.map((s) => SensorId.make(`${run}-${s}`)))
          sensors.forEach((s, i) => {
            const winner = Array.from({ length: writers }, (_, w) => w).find((w) => positionOf(w, i) === writers - 1)!
            assert.deepStrictEqual(
              loaded.get(SensorId.make(`${run}-${s}`)),
              row(run, s, at(writers - 1), {
                state: `writer-${winner}`,
                log_partition: partition,
                check_at: t0 + (writers - 1) * MINUTE
              })
            )
          })
          // The checks follow the winners: none is due before the newest states' check.
          assert.deepStrictEqual(yield* store.due(partition, t0 + (writers - 2) * MINUTE), [])
          assert.strictEqual((yield* store.due(partition, t0 + (writers - 1) * MINUTE)).length, sensors.length)
        })
    )
  })
