import { Schema } from "effect"

/**
 * The units a glucose figure is reported in. Values are stored and computed in
 * mg/dL (what US sensors report, and integers there); mmol/L is a presentation
 * choice made once, at the end, so that thresholds and rounding never depend on it.
 */
export const Units = Schema.Literals(["mg/dL", "mmol/L"])
export type Units = typeof Units.Type

/**
 * mg/dL per mmol/L for glucose: 10 × its molar mass (180.1559 g/mol). The
 * consensus and the GMI formula use this figure; the common 18 would shift a
 * converted value by about 0.09%.
 */
export const MMOL_PER_MGDL_FACTOR = 18.01559

/**
 * A mg/dL value (or a difference of values, such as a standard deviation, which
 * scales by the same factor) in the given units. Unrounded: rounding is for display.
 */
export const toUnits = (valueMgdl: number, units: Units): number =>
  units === "mg/dL" ? valueMgdl : valueMgdl / MMOL_PER_MGDL_FACTOR
