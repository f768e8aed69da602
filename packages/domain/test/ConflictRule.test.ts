import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, Effect, Schema } from "effect"
import {
  applyConflictRule,
  computeEtag,
  EventId,
  isLaterEvent,
  type ReadingCandidate,
  type ReadingState,
  SensorId,
  UserId
} from "../src/index.ts"

/** Replays events in order against an in-memory table keyed by `(sensor_id, timestamp)`. */
const applyAll = (initial: ReadonlyMap<string, ReadingState>, events: ReadonlyArray<ReadingCandidate>) => {
  const table = new Map(initial)
  const steps: Array<{ before: ReadingState | undefined; after: ReadingState | undefined }> = []
  for (const event of events) {
    const key = `${event.sensor_id}|${event.timestamp}`
    const before = table.get(key)
    const outcome = applyConflictRule(before, event)
    if (outcome._tag !== "Keep") table.set(key, outcome.next)
    steps.push({ before, after: table.get(key) })
  }
  return { table, steps }
}

// Few keys and few values so that sequences collide often.
const EventShape = Schema.Struct({
  sensor: Schema.Literals(["s1", "s2"]),
  timestamp: Schema.Literals([0, 300_000]),
  value: Schema.Literals([90, 100, 110]),
  source: Schema.Literals(["SENSOR", "MANUAL"]),
  // Mostly none: a flag on one value and not on another at the same key is still a content change.
  limit: Schema.optionalKey(Schema.Literals(["LO", "HI"])),
  // The accepting receiver's clock when it stamped the event id: any order relative to the order in
  // which the events were appended to the log, as with receivers whose clocks disagree.
  ingestedAt: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 10_000 }))
})

/** The events as appended to one partition of the log, in array order: each at the next offset. */
const toCandidates = (shapes: ReadonlyArray<typeof EventShape.Type>): Array<ReadingCandidate> =>
  shapes.map((shape, index) => ({
    sensor_id: SensorId.make(shape.sensor),
    user_id: UserId.make("user-1"),
    timestamp: shape.timestamp,
    glucose_value: shape.value,
    source: shape.source,
    ...(shape.limit === undefined ? {} : { sensor_limit: shape.limit }),
    // Unique, and ordered by the receiver's clock rather than by the order of appends.
    event_id: EventId.make(
      `${shape.ingestedAt.toString(16).padStart(8, "0")}-0000-7000-8000-${index.toString(16).padStart(12, "0")}`
    ),
    position: { partition: 0, offset: 1000 + index }
  }))

const sequences = Arbitrary.array(Arbitrary.schema(EventShape), { maxLength: 24 })
const sequenceAndCut = Arbitrary.flatMap(sequences, (shapes) =>
  Arbitrary.map(
    Arbitrary.schema(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: shapes.length }))),
    (cut) => ({
      shapes,
      cut
    })
  )
)

const contentOf = (state: ReadingState | undefined) =>
  state === undefined
    ? "none"
    : `${state.sensor_id}|${state.timestamp}|${state.glucose_value}|${state.source}|${state.sensor_limit ?? ""}`

describe("conflict rule", () => {
  it.effect.prop(
    "redelivering any suffix leaves every reading unchanged, versions included",
    [sequenceAndCut],
    ([{ shapes, cut }]) =>
      Effect.sync(() => {
        const events = toCandidates(shapes)
        const once = applyAll(new Map(), events).table
        const redelivered = applyAll(once, events.slice(cut)).table
        assert.deepStrictEqual([...redelivered.entries()].sort(), [...once.entries()].sort())
      })
  )

  it.effect.prop(
    "SENSOR beats MANUAL at one key, and the last appended event of the winning source decides, whatever the clocks said",
    [sequences],
    ([shapes]) =>
      Effect.sync(() => {
        const events = toCandidates(shapes)
        const { table } = applyAll(new Map(), events)
        for (const [key, state] of table) {
          const atKey = events.filter((event) => `${event.sensor_id}|${event.timestamp}` === key)
          const winningSource = atKey.some((event) => event.source === "SENSOR") ? "SENSOR" : "MANUAL"
          const newest = atKey.filter((event) => event.source === winningSource).at(-1)!
          assert.strictEqual(state.source, winningSource)
          assert.strictEqual(state.glucose_value, newest.glucose_value)
          assert.strictEqual(state.sensor_limit, newest.sensor_limit)
        }
      })
  )

  it.effect.prop(
    "a version never decreases and grows by one exactly when the content changes",
    [sequences],
    ([shapes]) =>
      Effect.sync(() => {
        for (const { before, after } of applyAll(new Map(), toCandidates(shapes)).steps) {
          const changed = contentOf(before) !== contentOf(after)
          assert.strictEqual(after!.version, (before?.version ?? 0) + (changed ? 1 : 0))
        }
      })
  )

  it.effect.prop("the etag changes exactly when the content changes", [sequences], ([shapes]) =>
    Effect.sync(() => {
      for (const { before, after } of applyAll(new Map(), toCandidates(shapes)).steps) {
        const etagBefore = before === undefined ? undefined : computeEtag(before, before.version)
        const etagAfter = computeEtag(after!, after!.version)
        assert.strictEqual(etagBefore !== etagAfter, contentOf(before) !== contentOf(after))
      }
    })
  )

  it("MANUAL 100 then SENSOR 110 ends at SENSOR 110 version 2, and a later MANUAL 90 changes nothing", () => {
    const events = toCandidates([
      { sensor: "s1", timestamp: 0, value: 100, source: "MANUAL", ingestedAt: 1 },
      { sensor: "s1", timestamp: 0, value: 110, source: "SENSOR", ingestedAt: 2 },
      { sensor: "s1", timestamp: 0, value: 90, source: "MANUAL", ingestedAt: 3 }
    ])
    const { table, steps } = applyAll(new Map(), events)
    const stored = table.get("s1|0")!
    assert.strictEqual(stored.source, "SENSOR")
    assert.strictEqual(stored.glucose_value, 110)
    assert.strictEqual(stored.version, 2)
    assert.deepStrictEqual(steps[2]!.before, steps[2]!.after)
  })

  it("the later append wins over an earlier one whose receiver's clock ran 3 s ahead", () => {
    const [ahead, behind] = toCandidates([
      { sensor: "s1", timestamp: 0, value: 100, source: "SENSOR", ingestedAt: 3_000 },
      { sensor: "s1", timestamp: 0, value: 110, source: "SENSOR", ingestedAt: 0 }
    ])
    const { table } = applyAll(new Map(), [ahead!, behind!])
    assert.strictEqual(table.get("s1|0")!.glucose_value, 110)
    // Redelivered (or replayed from the DLQ with its first position), the earlier append changes nothing.
    const again = applyAll(table, [ahead!])
    assert.strictEqual(again.table.get("s1|0")!.glucose_value, 110)
    assert.strictEqual(again.table.get("s1|0")!.version, 2)
  })

  it("a reading stored without a position (before positions were kept) is compared by event id", () => {
    const [older, newer] = toCandidates([
      { sensor: "s1", timestamp: 0, value: 100, source: "SENSOR", ingestedAt: 1 },
      { sensor: "s1", timestamp: 0, value: 110, source: "SENSOR", ingestedAt: 2 }
    ])
    const legacy = new Map([["s1|0", { ...newer!, position: undefined, version: 1 }]])
    assert.strictEqual(applyAll(legacy, [older!]).table.get("s1|0")!.glucose_value, 110)
    assert.isTrue(isLaterEvent(newer!, { ...older!, position: undefined }))
    assert.isFalse(isLaterEvent(older!, { ...newer!, position: undefined }))
  })
})
