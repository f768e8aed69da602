import { assert, describe, it } from "@effect/vitest"
import { rateBetween, TREND_WINDOW_MS, trendOf } from "../src/index.ts"

const MINUTE = 60_000

describe("a reading's rate and trend", () => {
  it.each([
    [3, "DoubleUp"],
    [2.99, "SingleUp"],
    [2, "SingleUp"],
    [1, "FortyFiveUp"],
    [0.99, "Flat"],
    [0, "Flat"],
    [-0.99, "Flat"],
    [-1, "FortyFiveDown"],
    [-2, "SingleDown"],
    [-2.99, "SingleDown"],
    [-3, "DoubleDown"],
    [-12, "DoubleDown"]
  ] as const)("%s mg/dL per minute is %s", (rate, trend) => {
    assert.strictEqual(trendOf(rate), trend)
  })

  it("is NotComputable without a previous reading within 15 minutes", () => {
    assert.strictEqual(trendOf(null), "NotComputable")
    const at = { timestamp: 100 * MINUTE, value: 120 }
    assert.isNull(rateBetween(undefined, at))
    assert.isNull(rateBetween({ timestamp: at.timestamp - TREND_WINDOW_MS - 1, value: 100 }, at))
    assert.isNull(rateBetween({ timestamp: at.timestamp, value: 100 }, at), "not earlier")
    // 20 mg/dL in 5 minutes; 30 in exactly 15 (the window's edge is in).
    assert.strictEqual(rateBetween({ timestamp: at.timestamp - 5 * MINUTE, value: 100 }, at), 4)
    assert.strictEqual(rateBetween({ timestamp: at.timestamp - TREND_WINDOW_MS, value: 150 }, at), -2)
  })
})
