import { assert, describe, it } from "@effect/vitest"
import { mergeTimeOfDayCounts, timeOfDayBinOf, timeOfDayProfileOf, valueCountsOf } from "../src/index.ts"

describe("the time-of-day profile", () => {
  it.each([
    // 2026-11-01 in New York: 01:00-02:00 happens twice (EDT, then EST); both fall in the same wall-clock bins.
    ["2026-11-01T05:30:00Z", "America/New_York", 6],
    ["2026-11-01T06:30:00Z", "America/New_York", 6],
    // 2026-03-08: 02:00-03:00 is skipped; 06:59 UTC is 01:59 EST (bin 7), 07:00 UTC is 03:00 EDT (bin 12).
    ["2026-03-08T06:59:00Z", "America/New_York", 7],
    ["2026-03-08T07:00:00Z", "America/New_York", 12],
    // Kolkata is UTC+05:30: midnight UTC is 05:30 there.
    ["2026-12-01T00:00:00Z", "Asia/Kolkata", 22],
    ["2026-12-01T23:59:59Z", "UTC", 95]
  ] as const)("%s in %s is in bin %s of 15 minutes", (iso, zone, bin) => {
    assert.strictEqual(timeOfDayBinOf(Date.parse(iso), zone), bin)
  })

  it("merges bins and takes percentiles of the merged values, a bin without readings being null", () => {
    const a = [valueCountsOf([100, 110]), valueCountsOf([])]
    const b = [valueCountsOf([120]), valueCountsOf([])]
    const merged = mergeTimeOfDayCounts(2, a, b)
    const [first, second] = timeOfDayProfileOf(merged)
    // 100, 110, 120: the median is 110, p25 105 (between the first two), p5 101.
    assert.deepStrictEqual(first, { p5: 101, p25: 105, p50: 110, p75: 115, p95: 119 })
    assert.isNull(second)
    assert.strictEqual(timeOfDayBinOf(Date.parse("2026-12-01T12:07:00Z"), "UTC", 60), 12)
  })
})
