import { assert, describe, it } from "@effect/vitest"
import { Exit, Schema } from "effect"
import { IsoTimestamp } from "../src/index.ts"

describe("timestamps at the edges of the calendar", () => {
  const decode = Schema.decodeUnknownExit(IsoTimestamp)

  // Found by the API fuzzer: `from=0000-01-01T00:00:00.000Z` passed validation and PostgreSQL then
  // refused the query ("date/time field value out of range"), which the gateway answered with a 503.
  it("refuse the year 0000, which PostgreSQL cannot store", () => {
    const exit = decode("0000-01-01T00:00:00.000Z")
    assert.isTrue(Exit.isFailure(exit))
    assert.match(String(exit), /year 0001 or later/)
  })

  it("accept the first and the last instant of four-digit years", () => {
    assert.isTrue(Exit.isSuccess(decode("0001-01-01T00:00:00.000Z")))
    assert.isTrue(Exit.isSuccess(decode("9999-12-31T23:59:59.999Z")))
  })
})
