import { SensorId } from "@dexmon/domain"
import { assert, describe, it } from "@effect/vitest"
import fc from "fast-check"
import { bandOf, joinRuns, joinSensorRuns, MAX_READING_GAP_MS, runsOf, sensorRunsOf } from "../src/index.ts"
import { at, every5, splitSeries } from "./fixtures.ts"

describe("bandOf", () => {
  it.each([
    { value: 40, band: 0 },
    { value: 53.9, band: 0 },
    { value: 54, band: 1 },
    { value: 69.99, band: 1 },
    { value: 70, band: 2 },
    { value: 180.5, band: 2 },
    { value: 250, band: 2 },
    { value: 250.1, band: 3 },
    { value: 400, band: 3 }
  ])("$value mg/dL is in band $band", ({ band, value }) => {
    assert.strictEqual(bandOf(value), band)
  })
})

describe("runsOf", () => {
  it("start a run where the band changes", () => {
    // Bands of 100, 110, 60, 65, 50, 100: 2, 2, 1, 1, 0, 2.
    assert.deepStrictEqual(runsOf(every5([100, 110, 60, 65, 50, 100])), [
      { band: 2, first: at(0), last: at(5), count: 2 },
      { band: 1, first: at(10), last: at(15), count: 2 },
      { band: 0, first: at(20), last: at(20), count: 1 },
      { band: 2, first: at(25), last: at(25), count: 1 }
    ])
  })

  it("keep readings exactly 15 minutes apart in one run, and break it one millisecond later", () => {
    const apart = (ms: number) =>
      runsOf([
        { timestamp: at(0), value: 100 },
        { timestamp: at(0) + ms, value: 120 }
      ])
    assert.deepStrictEqual(apart(MAX_READING_GAP_MS), [{ band: 2, first: at(0), last: at(15), count: 2 }])
    assert.deepStrictEqual(apart(MAX_READING_GAP_MS + 1), [
      { band: 2, first: at(0), last: at(0), count: 1 },
      { band: 2, first: at(15) + 1, last: at(15) + 1, count: 1 }
    ])
  })

  it("count readings with equal timestamps in the order given", () => {
    // Two sensors at minute 0 (100, 60), then 65 at minute 5: bands 2 | 1, 1.
    assert.deepStrictEqual(
      runsOf([
        { timestamp: at(0), value: 100 },
        { timestamp: at(0), value: 60 },
        { timestamp: at(5), value: 65 }
      ]),
      [
        { band: 2, first: at(0), last: at(0), count: 1 },
        { band: 1, first: at(0), last: at(5), count: 2 }
      ]
    )
  })

  it("give no runs for no readings", () => {
    assert.deepStrictEqual(runsOf([]), [])
  })
})

describe("joinRuns", () => {
  it("join the runs at the seam when the band is the same and there is no gap", () => {
    // 100, 100 at 0, 5 and 110, 60 at 10, 15: the band-2 runs (0..5 and 10..10) are 5 minutes apart.
    assert.deepStrictEqual(joinRuns(runsOf(every5([100, 100])), runsOf(every5([110, 60], 10))), [
      { band: 2, first: at(0), last: at(10), count: 3 },
      { band: 1, first: at(15), last: at(15), count: 1 }
    ])
  })

  it("keep the runs apart when the band changes at the seam", () => {
    assert.deepStrictEqual(joinRuns(runsOf(every5([100])), runsOf(every5([60], 5))), [
      { band: 2, first: at(0), last: at(0), count: 1 },
      { band: 1, first: at(5), last: at(5), count: 1 }
    ])
  })

  it("keep the runs apart when the data stopped at the seam", () => {
    // 20 minutes between the last reading of one and the first of the other: more than 15.
    assert.deepStrictEqual(joinRuns(runsOf(every5([100])), runsOf(every5([100], 20))), [
      { band: 2, first: at(0), last: at(0), count: 1 },
      { band: 2, first: at(20), last: at(20), count: 1 }
    ])
  })

  it("return the other side when one side is empty", () => {
    const runs = runsOf(every5([100, 60]))
    assert.deepStrictEqual(joinRuns([], runs), runs)
    assert.deepStrictEqual(joinRuns(runs, []), runs)
  })

  it("give the runs of the whole series for any split of it", () => {
    fc.assert(
      fc.property(splitSeries, ({ cut, series }) => {
        assert.deepStrictEqual(joinRuns(runsOf(series.slice(0, cut)), runsOf(series.slice(cut))), runsOf(series))
      }),
      { numRuns: 500 }
    )
  })
})

describe("sensorRunsOf and joinSensorRuns", () => {
  it("give each sensor the runs of its own series, and join per sensor for any split of the readings", () => {
    fc.assert(
      fc.property(
        splitSeries,
        fc.array(fc.constantFrom(...["a", "b", "c"].map((id) => SensorId.make(id))), { minLength: 60, maxLength: 60 }),
        (split, ids) => {
          const readings = split.series.map((reading, i) => ({ ...reading, sensor_id: ids[i]! }))
          const whole = sensorRunsOf(readings)
          for (const [sensorId, runs] of whole) {
            assert.deepStrictEqual(runs, runsOf(readings.filter((reading) => reading.sensor_id === sensorId)))
          }
          const joined = joinSensorRuns(
            sensorRunsOf(readings.slice(0, split.cut)),
            sensorRunsOf(readings.slice(split.cut))
          )
          assert.deepStrictEqual(new Map([...joined].sort()), new Map([...whole].sort()))
        }
      ),
      { numRuns: 500 }
    )
  })
})
