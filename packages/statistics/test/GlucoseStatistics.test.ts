import { SensorId } from "@dexmon/domain"
import { assert, describe, it } from "@effect/vitest"
import {
  type GlucoseStatistics,
  glucoseStatisticsOf,
  mergeValueCounts,
  nightAndDayOf,
  runsOf,
  type TimeInRanges,
  valueCountsOf
} from "../src/index.ts"
import { at, every5, MINUTE, T0, times } from "./fixtures.ts"

const DAY = 1_440 * MINUTE

const percents = (ranges: TimeInRanges) => [
  ranges.very_low.percent,
  ranges.low.percent,
  ranges.in_range.percent,
  ranges.high.percent,
  ranges.very_high.percent
]

const minutes = (ranges: TimeInRanges) => [
  ranges.very_low.minutes,
  ranges.low.minutes,
  ranges.in_range.minutes,
  ranges.high.minutes,
  ranges.very_high.minutes
]

const assertCloseAll = (actual: ReadonlyArray<number>, expected: ReadonlyArray<number>, delta: number) => {
  assert.strictEqual(actual.length, expected.length)
  actual.forEach((value, i) => {
    assert.closeTo(value, expected[i]!, delta)
  })
}

const assertRelative = (actual: number | null, expected: number, tolerance = 1e-9) => {
  assert.isNotNull(actual)
  assert.closeTo(actual!, expected, Math.abs(expected) * tolerance)
}

describe("glucoseStatisticsOf", () => {
  // 50, 60, 100, 100, 200, 300 at minutes 0..25, a 30-minute window with every slot covered.
  //   Ranges: very low 50, low 60, in range 100 and 100, high 200, very high 300: 1/6, 1/6, 2/6, 1/6, 1/6
  //   of the readings, of 6 slots × 5 = 30 minutes: 5, 5, 10, 5, 5 minutes.
  //   Mean: 810 / 6 = 135.
  //   Deviations: -85, -75, -35, -35, 65, 165; squares 7225, 5625, 1225, 1225, 4225, 27225, sum 46750;
  //   population variance 46750 / 6 = 7791.67, SD 88.270418.
  //   CV: 88.270418 / 135 × 100 = 65.385495 > 36.
  //   GMI: 3.31 + 0.02392 × 135 = 6.5392 %.
  //   In mmol/L: mean 135 / 18.01559 = 7.493510, SD 88.270418 / 18.01559 = 4.899668,
  //   GMI 12.71 + 4.70587 × 7.493510 = 47.973483 mmol/mol.
  const values = [50, 60, 100, 100, 200, 300]
  const fixture = {
    counts: valueCountsOf(values),
    slots: 6,
    from: T0,
    to: at(30),
    runs: new Map([[SensorId.make("s"), runsOf(every5(values))]])
  }

  const assertCommon = (stats: GlucoseStatistics) => {
    assert.strictEqual(stats.readings, 6)
    assert.strictEqual(stats.window_minutes, 30)
    assert.closeTo(stats.window_days, 30 / 1_440, 1e-15)
    assert.strictEqual(stats.cgm_active_percent, 100)
    assert.isFalse(stats.data_sufficient)
    assertCloseAll(percents(stats.time_in_ranges), [100 / 6, 100 / 6, 200 / 6, 100 / 6, 100 / 6], 1e-12)
    assertCloseAll(minutes(stats.time_in_ranges), [5, 5, 10, 5, 5], 1e-12)
    assert.closeTo(stats.coefficient_of_variation!, 65.385495, 1e-6)
    assert.isTrue(stats.variability_high)
    assert.closeTo(stats.gmi_percent!, 6.5392, 1e-12)
    assert.closeTo(stats.gmi_mmol_per_mol!, 47.973483, 1e-6)
    // 50, 60 are below 70 for 10 minutes (until 100 at 10): no episode.
    for (const summary of Object.values(stats.episodes))
      assert.deepStrictEqual(summary, { count: 0, minutes: 0, items: [] })
  }

  it("summarize a small window in mg/dL", () => {
    const stats = glucoseStatisticsOf({ ...fixture, units: "mg/dL" })
    assert.strictEqual(stats.units, "mg/dL")
    assertCommon(stats)
    assert.strictEqual(stats.mean, 135)
    assert.closeTo(stats.standard_deviation!, 88.270418, 1e-6)
  })

  it("summarize the same window in mmol/L, with the unitless figures unchanged", () => {
    const stats = glucoseStatisticsOf({ ...fixture, units: "mmol/L" })
    assert.strictEqual(stats.units, "mmol/L")
    assertCommon(stats)
    assert.closeTo(stats.mean!, 7.49351, 1e-6)
    assert.closeTo(stats.standard_deviation!, 4.899668, 1e-6)
  })

  it("summarize a window without readings", () => {
    const stats = glucoseStatisticsOf({
      counts: [],
      slots: 0,
      from: T0,
      to: T0 + 14 * DAY,
      runs: new Map(),
      units: "mmol/L"
    })
    assert.deepStrictEqual(stats, {
      units: "mmol/L",
      readings: 0,
      window_minutes: 20_160,
      window_days: 14,
      cgm_active_percent: 0,
      data_sufficient: false,
      time_in_ranges: {
        very_low: { percent: 0, minutes: 0 },
        low: { percent: 0, minutes: 0 },
        in_range: { percent: 0, minutes: 0 },
        high: { percent: 0, minutes: 0 },
        very_high: { percent: 0, minutes: 0 }
      },
      mean: null,
      standard_deviation: null,
      coefficient_of_variation: null,
      variability_high: false,
      gmi_percent: null,
      gmi_mmol_per_mol: null,
      episodes: {
        below_54: { count: 0, minutes: 0, items: [] },
        below_70: { count: 0, minutes: 0, items: [] },
        above_250: { count: 0, minutes: 0, items: [] }
      }
    })
  })

  it("put values on the range bounds where the consensus puts them", () => {
    // Very low: 53.9; low: 54, 69.9; in range: 70, 180; high: 180.5, 250; very high: 250.1.
    // Of 8 readings: 1/8, 2/8, 2/8, 2/8, 1/8, exact in binary.
    const counts = valueCountsOf([53.9, 54, 69.9, 70, 180, 180.5, 250, 250.1])
    const stats = glucoseStatisticsOf({ counts, slots: 8, from: T0, to: at(40), runs: new Map(), units: "mg/dL" })
    assert.deepStrictEqual(percents(stats.time_in_ranges), [12.5, 25, 25, 25, 12.5])
    // 8 slots × 5 = 40 minutes: 5, 10, 10, 10, 5.
    assert.deepStrictEqual(minutes(stats.time_in_ranges), [5, 10, 10, 10, 5])
  })

  it.each([
    // 14 days are 4032 slots; 20,200 minutes are 4040, of which 2828 are exactly 70%.
    { name: "70% of just over 14 days", windowMinutes: 20_200, slots: 2_828, percent: 70, sufficient: true },
    {
      name: "one slot short of 70%",
      windowMinutes: 20_200,
      slots: 2_827,
      percent: 69.975247,
      sufficient: false
    },
    { name: "all of exactly 14 days", windowMinutes: 20_160, slots: 4_032, percent: 100, sufficient: true },
    {
      name: "all of 14 days less 5 minutes",
      windowMinutes: 20_155,
      slots: 4_031,
      percent: 100,
      sufficient: false
    },
    // 12 minutes are 2.4 slots, counted as 3: 2 covered are 66.67%.
    { name: "a partial last slot", windowMinutes: 12, slots: 2, percent: 66.666667, sufficient: false }
  ])("measure CGM activity and sufficiency: $name", ({ slots, percent, sufficient, windowMinutes }) => {
    const stats = glucoseStatisticsOf({
      counts: [{ value: 120, count: slots }],
      slots,
      from: T0,
      to: at(windowMinutes),
      runs: new Map(),
      units: "mg/dL"
    })
    assert.closeTo(stats.cgm_active_percent, percent, 1e-6)
    assert.strictEqual(stats.data_sufficient, sufficient)
  })

  it.each([
    // 64 and 136: mean 100, deviations ±36, SD 36, CV exactly 36: not above the threshold.
    { low: 64, high: 136, cv: 36, variable: false },
    // 63 and 137: SD 37, CV 37.
    { low: 63, high: 137, cv: 37, variable: true }
  ])("call a CV of $cv% variable: $variable", ({ cv, high, low, variable }) => {
    const stats = glucoseStatisticsOf({
      counts: valueCountsOf([low, high]),
      slots: 2,
      from: T0,
      to: at(10),
      runs: new Map(),
      units: "mg/dL"
    })
    assert.strictEqual(stats.coefficient_of_variation, cv)
    assert.strictEqual(stats.variability_high, variable)
  })

  it("report each condition's episodes with their minutes added up", () => {
    // Low 0..15, up 20..30 (15 minutes) ends it at 20; low 35..50, up 55..75 ends that at 55: two
    // episodes of 20 minutes below 70. The low readings are 60: none below 54. 100 is never above 250.
    const readings = every5([...times(4, 60), ...times(3, 100), ...times(4, 60), ...times(5, 100)])
    const stats = glucoseStatisticsOf({
      counts: valueCountsOf(readings.map((r) => r.value)),
      slots: readings.length,
      from: T0,
      to: at(80),
      runs: new Map([[SensorId.make("s"), runsOf(readings)]]),
      units: "mg/dL"
    })
    assert.deepStrictEqual(stats.episodes.below_70, {
      count: 2,
      minutes: 40,
      items: [
        { sensor_ids: [SensorId.make("s")], start: at(0), end: at(20), minutes: 20 },
        { sensor_ids: [SensorId.make("s")], start: at(35), end: at(55), minutes: 20 }
      ]
    })
    assert.deepStrictEqual(stats.episodes.below_54, { count: 0, minutes: 0, items: [] })
    assert.deepStrictEqual(stats.episodes.above_250, { count: 0, minutes: 0, items: [] })
  })

  it("agree with a naive computation over 90 days of generated readings", () => {
    // A deterministic pseudo-random walk (a 32-bit linear congruential generator) around 150 mg/dL, every
    // 5 minutes for 90 days, in integers as sensors report, with some finger-stick values in tenths.
    let state = 12_345
    const random = () => {
      state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0
      return state / 2 ** 32
    }
    const values: Array<number> = []
    let level = 150
    for (let i = 0; i < 90 * 288; i++) {
      level = Math.min(400, Math.max(40, level + Math.round((random() - 0.5) * 12)))
      values.push(i % 97 === 0 ? level + Math.round(random() * 9) / 10 : level)
    }
    // Counted in daily parts and merged, as the stores will.
    const days = Array.from({ length: 90 }, (_, d) => valueCountsOf(values.slice(d * 288, (d + 1) * 288)))
    const counts = mergeValueCounts(...days)

    const n = values.length
    const mean = values.reduce((sum, v) => sum + v, 0) / n
    const sd = Math.sqrt(values.reduce((sum, v) => sum + (v - mean) ** 2, 0) / n)
    const share = (inRange: (v: number) => boolean) => (100 * values.filter(inRange).length) / n
    const expectedPercents = [
      share((v) => v < 54),
      share((v) => v >= 54 && v < 70),
      share((v) => v >= 70 && v <= 180),
      share((v) => v > 180 && v <= 250),
      share((v) => v > 250)
    ]
    // The walk must visit every range, or the comparison would not test the bounds.
    for (const percent of expectedPercents) assert.isAbove(percent, 0)

    const window = { counts, slots: n, from: T0, to: T0 + 90 * DAY, runs: new Map() }
    const mgdl = glucoseStatisticsOf({ ...window, units: "mg/dL" })
    assert.strictEqual(mgdl.readings, n)
    assert.strictEqual(mgdl.cgm_active_percent, 100)
    assert.isTrue(mgdl.data_sufficient)
    assertRelative(mgdl.mean, mean)
    assertRelative(mgdl.standard_deviation, sd)
    assertRelative(mgdl.coefficient_of_variation, (sd / mean) * 100)
    percents(mgdl.time_in_ranges).forEach((percent, i) => {
      assertRelative(percent, expectedPercents[i]!)
    })

    const mmol = glucoseStatisticsOf({ ...window, units: "mmol/L" })
    assertRelative(mmol.mean, mean / 18.01559)
    assertRelative(mmol.standard_deviation, sd / 18.01559)
  })
})

describe("nightAndDayOf", () => {
  it("give night (bin 0: 00:00-06:00) and day (the other bins) their own statistics, in either units", () => {
    // Night: 50, 60, 100 (mean 70); day: 100, 200 in bin 1, 300 in bin 3 (mean 200).
    const counts = [valueCountsOf([50, 60, 100]), valueCountsOf([100, 200]), [], valueCountsOf([300])]
    const { day, night } = nightAndDayOf(counts, "mg/dL")
    assert.strictEqual(night.readings, 3)
    assert.approximately(night.mean!, 70, 1e-12)
    assert.approximately(night.standard_deviation!, Math.sqrt((20 ** 2 + 10 ** 2 + 30 ** 2) / 3), 1e-12)
    assert.deepStrictEqual(
      Object.values(night.time_in_ranges).map((range) => range.percent),
      [100 / 3, 100 / 3, 100 / 3, 0, 0]
    )
    assert.strictEqual(day.readings, 3)
    assert.approximately(day.mean!, 200, 1e-12)
    assert.deepStrictEqual(
      Object.values(day.time_in_ranges).map((range) => range.percent),
      [0, 0, 100 / 3, 100 / 3, 100 / 3]
    )
    const mmol = nightAndDayOf(counts, "mmol/L")
    assert.approximately(mmol.night.mean!, 70 / 18.01559, 1e-12)
    assert.strictEqual(mmol.night.coefficient_of_variation, night.coefficient_of_variation)
  })

  it("give nulls and zero shares for a period without readings", () => {
    const { night } = nightAndDayOf([[], valueCountsOf([100])], "mg/dL")
    assert.deepStrictEqual(night, {
      readings: 0,
      time_in_ranges: {
        very_low: { percent: 0 },
        low: { percent: 0 },
        in_range: { percent: 0 },
        high: { percent: 0 },
        very_high: { percent: 0 }
      },
      mean: null,
      standard_deviation: null,
      coefficient_of_variation: null
    })
  })
})
