import { SensorId, UserId } from "@dexmon/domain"
import { assert, layer } from "@effect/vitest"
import { Effect, type Layer, Result } from "effect"
import { AlertStateStore, type SensorStateRow, type SensorStateWrite } from "../../src/index.ts"

let runCounter = 0
const newRun = () => `st${Date.now().toString(36)}${runCounter++}`
// A log partition of each test's own: `due` reads a whole partition.
const newPartition = () => (Date.now() % 1_000_000) * 100 + (runCounter++ % 100)
const t0 = Date.parse("2026-11-20T00:00:00.000Z")
const MINUTE = 60_000

const row = (
  run: string,
  sensor: string,
  fields: Partial<Omit<SensorStateRow, "sensor_id" | "revision">> = {}
): SensorStateWrite["row"] => ({
  sensor_id: SensorId.make(`${run}-${sensor}`),
  user_id: fields.user_id ?? UserId.make(`${run}-user`),
  log_partition: fields.log_partition ?? 0,
  state: fields.state ?? `{"sensor":"${sensor}"}`,
  check_at: fields.check_at === undefined ? t0 : fields.check_at
})

const sorted = (ids: ReadonlyArray<string>) => ids.toSorted()

const write = (r: SensorStateWrite["row"], expected_revision: number): SensorStateWrite => ({
  row: r,
  expected_revision
})

/** The behaviour every layer of the alert-state port must have. */
export const alertStateStoreContract = (name: string, storeLayer: Layer.Layer<AlertStateStore, unknown>) =>
  layer(storeLayer, { timeout: 120_000, excludeTestServices: true })(`AlertStateStore contract: ${name}`, (it) => {
    it.effect("a first write (expected revision 0) inserts at revision 1; a second first write conflicts", () =>
      Effect.gen(function* () {
        const store = yield* AlertStateStore
        const run = newRun()
        const first = row(run, "s1", { state: "first", check_at: t0 + MINUTE })
        yield* store.save([write(first, 0)])
        const loaded = yield* store.load([first.sensor_id, SensorId.make(`${run}-none`)])
        assert.deepStrictEqual([...loaded.entries()], [[first.sensor_id, { ...first, revision: 1 }]])

        const error = yield* store.save([write(row(run, "s1", { state: "second" }), 0)]).pipe(Effect.flip)
        assert.strictEqual(error._tag, "AlertStateConflict")
        assert.deepStrictEqual(error._tag === "AlertStateConflict" ? error.sensor_ids : [], [first.sensor_id])
        assert.deepStrictEqual((yield* store.load([first.sensor_id])).get(first.sensor_id), { ...first, revision: 1 })
      })
    )

    it.effect(
      "a write at the stored revision bumps it; a stale one conflicts alone, the rest of its batch is written",
      () =>
        Effect.gen(function* () {
          const store = yield* AlertStateStore
          const run = newRun()
          const [a1, b1] = [row(run, "a", { state: "a1" }), row(run, "b", { state: "b1" })]
          yield* store.save([write(a1, 0), write(b1, 0)])
          const a2 = row(run, "a", { state: "a2", check_at: null, log_partition: 3 })
          yield* store.save([write(a2, 1)])
          assert.deepStrictEqual((yield* store.load([a1.sensor_id])).get(a1.sensor_id), { ...a2, revision: 2 })

          // In one batch: `a` written from a stale read, `b` from a fresh one, `c` new.
          const aStale = row(run, "a", { state: "a-stale" })
          const [b2, c1] = [row(run, "b", { state: "b2" }), row(run, "c", { state: "c1" })]
          const error = yield* store.save([write(aStale, 1), write(b2, 1), write(c1, 0)]).pipe(Effect.flip)
          assert.deepStrictEqual(error._tag === "AlertStateConflict" ? error.sensor_ids : error, [a1.sensor_id])
          const loaded = yield* store.load([a1.sensor_id, b1.sensor_id, c1.sensor_id])
          assert.deepStrictEqual(loaded.get(a1.sensor_id), { ...a2, revision: 2 })
          assert.deepStrictEqual(loaded.get(b1.sensor_id), { ...b2, revision: 2 })
          assert.deepStrictEqual(loaded.get(c1.sensor_id), { ...c1, revision: 1 })
          // A write that expects a row where there is none conflicts too.
          const ghost = row(run, "ghost")
          const missing = yield* store.save([write(ghost, 4)]).pipe(Effect.flip)
          assert.deepStrictEqual(missing._tag === "AlertStateConflict" ? missing.sensor_ids : missing, [
            ghost.sensor_id
          ])
          assert.strictEqual((yield* store.load([ghost.sensor_id])).size, 0)
          yield* store.save([])
          yield* store.ping
        })
    )

    it.effect("a write retried after it went through counts as written, without a second bump", () =>
      Effect.gen(function* () {
        const store = yield* AlertStateStore
        const run = newRun()
        const first = row(run, "s", { state: "one" })
        yield* store.save([write(first, 0)])
        yield* store.save([write(first, 0)])
        const second = row(run, "s", { state: "two", check_at: t0 + 5 * MINUTE })
        yield* store.save([write(second, 1)])
        yield* store.save([write(second, 1)])
        assert.deepStrictEqual((yield* store.load([first.sensor_id])).get(first.sensor_id), { ...second, revision: 2 })
      })
    )

    it.effect("a batch that writes one sensor twice applies the writes in order", () =>
      Effect.gen(function* () {
        const store = yield* AlertStateStore
        const run = newRun()
        const [v1, v2, v3] = ["v1", "v2", "v3"].map((state) => row(run, "s", { state })) as [
          SensorStateWrite["row"],
          SensorStateWrite["row"],
          SensorStateWrite["row"]
        ]
        yield* store.save([write(v1, 0), write(v2, 1), write(v3, 2)])
        assert.deepStrictEqual((yield* store.load([v1.sensor_id])).get(v1.sensor_id), { ...v3, revision: 3 })
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
            early: row(run, "early", { log_partition: p, check_at: t0 - MINUTE }),
            now: row(run, "now", { log_partition: p, check_at: t0 }),
            later: row(run, "later", { log_partition: p, check_at: t0 + MINUTE }),
            never: row(run, "never", { log_partition: p, check_at: null }),
            elsewhere: row(run, "elsewhere", { log_partition: q, check_at: t0 - MINUTE })
          }
          yield* store.save(Object.values(rows).map((r) => write(r, 0)))
          assert.deepStrictEqual(yield* dueOf(p, t0), sorted([rows.early.sensor_id, rows.now.sensor_id]))
          assert.deepStrictEqual(yield* dueOf(p, t0 - MINUTE - 1), [])
          assert.deepStrictEqual(yield* dueOf(q, t0), sorted([rows.elsewhere.sensor_id]))
          assert.deepStrictEqual(yield* dueOf(newPartition(), t0), [])

          // Later, earlier, retired, and over to the other partition.
          yield* store.save([
            write({ ...rows.early, check_at: t0 + 2 * MINUTE }, 1),
            write({ ...rows.later, check_at: t0 - 2 * MINUTE }, 1),
            write({ ...rows.now, check_at: null }, 1),
            write({ ...rows.never, check_at: t0 - 3 * MINUTE, log_partition: q }, 1)
          ])
          assert.deepStrictEqual(yield* dueOf(p, t0), sorted([rows.later.sensor_id]))
          assert.deepStrictEqual(yield* dueOf(p, t0 + 2 * MINUTE), sorted([rows.later.sensor_id, rows.early.sensor_id]))
          assert.deepStrictEqual(yield* dueOf(q, t0), sorted([rows.never.sensor_id, rows.elsewhere.sensor_id]))
          // And back: the sensor's newest state decides, whatever its earlier ones said.
          yield* store.save([write({ ...rows.never, check_at: t0 - 4 * MINUTE, log_partition: p }, 2)])
          assert.deepStrictEqual(yield* dueOf(p, t0), sorted([rows.never.sensor_id, rows.later.sensor_id]))
          assert.deepStrictEqual(yield* dueOf(q, t0), sorted([rows.elsewhere.sensor_id]))
        })
    )

    it.effect("writers racing on the same sensors at the same revision: exactly one wins each sensor", () =>
      Effect.gen(function* () {
        const store = yield* AlertStateStore
        const run = newRun()
        const sensors = Array.from({ length: 12 }, (_, i) => `s${i}`)
        const writers = 6
        for (const expected of [0, 1]) {
          // Each writer writes every sensor, half of them in reverse order, all at once.
          const results = yield* Effect.forEach(
            Array.from({ length: writers }, (_, w) => w),
            (w) => {
              const ordered = w % 2 === 0 ? sensors : sensors.toReversed()
              return store
                .save(ordered.map((s) => write(row(run, s, { state: `${expected}:writer-${w}` }), expected)))
                .pipe(Effect.result)
            },
            { concurrency: "unbounded" }
          )
          const loaded = yield* store.load(sensors.map((s) => SensorId.make(`${run}-${s}`)))
          for (const s of sensors) {
            const sensorId = SensorId.make(`${run}-${s}`)
            const winners = results.flatMap((result, w) =>
              Result.isSuccess(result) ||
              (result.failure._tag === "AlertStateConflict" && !result.failure.sensor_ids.includes(sensorId))
                ? [w]
                : []
            )
            assert.strictEqual(winners.length, 1, `${s} at revision ${expected}: winners ${winners.join(", ")}`)
            assert.deepStrictEqual(loaded.get(sensorId), {
              ...row(run, s, { state: `${expected}:writer-${winners[0]}` }),
              revision: expected + 1
            })
          }
          for (const result of results) {
            if (Result.isFailure(result)) assert.strictEqual(result.failure._tag, "AlertStateConflict")
          }
        }
      })
    )
  })
