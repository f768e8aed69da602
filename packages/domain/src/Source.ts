import { Schema } from "effect"

/** Where a reading came from: the CGM itself, or a finger-stick value typed in by the user. */
export const Source = Schema.Literals(["SENSOR", "MANUAL"])
export type Source = typeof Source.Type
