import { PgTypes } from "@effect/sql-pg"
import { Result } from "effect"

/**
 * An array parameter with a declared element type. The driver infers an
 * array's type from its elements and refuses arrays it cannot type
 * consistently: all nulls, or whole numbers beside fractions (a batch of
 * glucose values 100 and 100.5).
 */
export const pgArray = (values: ReadonlyArray<unknown>, elementOid: number) =>
  Result.getOrThrow(PgTypes.array(values, elementOid))

export const { OID } = PgTypes
