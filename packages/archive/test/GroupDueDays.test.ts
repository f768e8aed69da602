import { UserId } from "@dexmon/domain"
import type { DueDay } from "@dexmon/ports"
import { assert, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { groupDueDays } from "../src/index.ts"

const due = (day: string, user: string, rows: number): DueDay => ({ day, user_id: UserId.make(user), rows })

/** Each group as `day: user/rows user/rows ...`. */
const groups = (pairs: ReadonlyArray<DueDay>, limits: { maxPairs: number; maxRows: number }) =>
  Stream.fromIterable(pairs).pipe(
    Stream.rechunk(2),
    groupDueDays(limits),
    Stream.map((group) => `${group.day}: ${group.due.map((d) => `${d.user_id}/${d.rows}`).join(" ")}`),
    Stream.runCollect
  )

it.effect.each([
  {
    name: "packs pairs of one day up to the most pairs, then starts a new group",
    pairs: [due("d1", "a", 1), due("d1", "b", 1), due("d1", "c", 1), due("d1", "d", 1), due("d1", "e", 1)],
    limits: { maxPairs: 2, maxRows: 100 },
    expected: ["d1: a/1 b/1", "d1: c/1 d/1", "d1: e/1"]
  },
  {
    name: "never puts two days in one group",
    pairs: [due("d1", "a", 1), due("d2", "a", 1), due("d2", "b", 1)],
    limits: { maxPairs: 10, maxRows: 100 },
    expected: ["d1: a/1", "d2: a/1 b/1"]
  },
  {
    name: "keeps a group's readings within the most rows; a pair larger than that is a group of its own",
    pairs: [due("d1", "a", 40), due("d1", "b", 50), due("d1", "c", 20), due("d1", "d", 250), due("d1", "e", 100)],
    limits: { maxPairs: 10, maxRows: 100 },
    expected: ["d1: a/40 b/50", "d1: c/20", "d1: d/250", "d1: e/100"]
  },
  { name: "makes no group of nothing", pairs: [], limits: { maxPairs: 3, maxRows: 100 }, expected: [] }
])("groupDueDays $name", ({ pairs, limits, expected }) =>
  Effect.gen(function* () {
    assert.deepStrictEqual(yield* groups(pairs, limits), expected)
  })
)
