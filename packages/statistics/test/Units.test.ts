import { assert, describe, it } from "@effect/vitest"
import { Exit, Schema } from "effect"
import { MMOL_PER_MGDL_FACTOR, toUnits, Units } from "../src/index.ts"

describe("Units", () => {
  it("accept the two units and refuse anything else", () => {
    const decode = Schema.decodeUnknownExit(Units)
    assert.isTrue(Exit.isSuccess(decode("mg/dL")))
    assert.isTrue(Exit.isSuccess(decode("mmol/L")))
    assert.isTrue(Exit.isFailure(decode("mmol")))
  })

  it.each([
    // mg/dL is the unit values are stored in: unchanged.
    { mgdl: 180, units: "mg/dL" as const, expected: 180 },
    // One mmol/L is 18.01559 mg/dL, so the factor itself is 1 mmol/L.
    { mgdl: MMOL_PER_MGDL_FACTOR, units: "mmol/L" as const, expected: 1 },
    // 180 / 18.01559 = 9.9913464 (with the rounder 18 it would be 10).
    { mgdl: 180, units: "mmol/L" as const, expected: 9.9913464 },
    // 70 / 18.01559 = 3.8855236 (with 18: 3.8888889).
    { mgdl: 70, units: "mmol/L" as const, expected: 3.8855236 }
  ])("$mgdl mg/dL is $expected $units", ({ expected, mgdl, units }) => {
    assert.closeTo(toUnits(mgdl, units), expected, 1e-7)
  })
})
