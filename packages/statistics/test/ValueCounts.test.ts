import { assert, describe, it } from "@effect/vitest"
import fc from "fast-check"
import { mergeValueCounts, percentileOf, valueCountsOf } from "../src/index.ts"

/** Linear interpolation between closest ranks (numpy default, R type 7) over the expanded, sorted values. */
const naivePercentile = (values: ReadonlyArray<number>, p: number): number | null => {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  const h = (p / 100) * (sorted.length - 1)
  const low = Math.floor(h)
  const x = sorted[low]!
  const y = sorted[Math.min(low + 1, sorted.length - 1)]!
  return x + (h - low) * (y - x)
}

const glucoseValue = fc.oneof(
  fc.integer({ min: 40, max: 400 }),
  fc.constantFrom(53.5, 54, 69.9, 70, 180, 180.5, 250, 250.1),
  fc.double({ min: 40, max: 400, noNaN: true })
)

describe("valueCountsOf", () => {
  it("count equal values once each, sorted by value", () => {
    assert.deepStrictEqual(valueCountsOf([100, 90, 100, 110.5, 90, 100]), [
      { value: 90, count: 2 },
      { value: 100, count: 3 },
      { value: 110.5, count: 1 }
    ])
  })

  it("give no entries for no values", () => {
    assert.deepStrictEqual(valueCountsOf([]), [])
  })
})

describe("mergeValueCounts", () => {
  it("add the counts of equal values and keep the order", () => {
    const merged = mergeValueCounts(
      valueCountsOf([100, 120]),
      valueCountsOf([80, 100, 100]),
      [],
      valueCountsOf([120, 300])
    )
    // 80 once; 100 once + twice; 120 once + once; 300 once.
    assert.deepStrictEqual(merged, [
      { value: 80, count: 1 },
      { value: 100, count: 3 },
      { value: 120, count: 2 },
      { value: 300, count: 1 }
    ])
  })

  it("give the counts of the whole series for any split of it", () => {
    fc.assert(
      fc.property(fc.array(glucoseValue), fc.nat(), (values, at) => {
        const cut = at % (values.length + 1)
        assert.deepStrictEqual(
          mergeValueCounts(valueCountsOf(values.slice(0, cut)), valueCountsOf(values.slice(cut))),
          valueCountsOf(values)
        )
      })
    )
  })
})

describe("percentileOf", () => {
  // The values 10, 20, 20, 40 (n = 4): the rank of p is h = p/100 × 3, interpolated between
  // x[⌊h⌋] and x[⌊h⌋ + 1]. Chosen so that h is a binary fraction and every result is exact.
  const counts = valueCountsOf([40, 20, 10, 20])

  it.each([
    // h = 0: x[0].
    { p: 0, expected: 10 },
    // h = 0.375: 10 + 0.375 × (20 - 10) = 13.75.
    { p: 12.5, expected: 13.75 },
    // h = 0.75: 10 + 0.75 × 10 = 17.5.
    { p: 25, expected: 17.5 },
    // h = 1.5: between x[1] = 20 and x[2] = 20, which are one entry of the counts.
    { p: 50, expected: 20 },
    // h = 2.25: 20 + 0.25 × (40 - 20) = 25, across two entries of the counts.
    { p: 75, expected: 25 },
    // h = 3: x[3].
    { p: 100, expected: 40 },
    // Outside 0..100: clamped to the ends.
    { p: -5, expected: 10 },
    { p: 150, expected: 40 }
  ])("the $p-th percentile of 10, 20, 20, 40 is $expected", ({ expected, p }) => {
    assert.strictEqual(percentileOf(counts, p), expected)
  })

  it("skip values counted zero times", () => {
    // 10, 20, 20, 40 with 30 counted 0 times: h = 2.25 interpolates from 20 to 40, not to 30.
    const withZero = [...counts.slice(0, 2), { value: 30, count: 0 }, ...counts.slice(2)]
    assert.strictEqual(percentileOf(withZero, 75), 25)
  })

  it("give the value itself for one distinct value, and null for none", () => {
    assert.strictEqual(percentileOf([{ value: 100, count: 3 }], 37), 100)
    assert.isNull(percentileOf([], 50))
  })

  it("agree with linear interpolation over the expanded values", () => {
    fc.assert(
      fc.property(
        fc.array(glucoseValue, { minLength: 1 }),
        fc.oneof(fc.constantFrom(0, 5, 25, 50, 75, 95, 100), fc.double({ min: 0, max: 100, noNaN: true })),
        (values, p) => {
          assert.strictEqual(percentileOf(valueCountsOf(values), p), naivePercentile(values, p))
        }
      )
    )
  })
})
