import { assert, describe, it } from "@effect/vitest"
import cassandra from "cassandra-driver"
import { Effect } from "effect"
import { consistencyOf, isResponseError, responseErrorCodes } from "../src/alert-store/CassandraSession.ts"

// CassandraSession writes the protocol's numbers out so that importing it does not load the driver;
// they must stay the driver's.
describe("CassandraSession's protocol numbers are the driver's", () => {
  const { consistencies, responseErrorCodes: driverCodes } = cassandra.types
  it.effect("consistency levels", () =>
    Effect.sync(() =>
      assert.deepStrictEqual(consistencyOf, {
        ONE: consistencies.one,
        LOCAL_ONE: consistencies.localOne,
        QUORUM: consistencies.quorum,
        LOCAL_QUORUM: consistencies.localQuorum,
        EACH_QUORUM: consistencies.eachQuorum,
        ALL: consistencies.all,
        LOCAL_SERIAL: consistencies.localSerial
      })
    )
  )
  it.effect("response error codes, and a response error told by its class and code", () =>
    Effect.sync(() => {
      for (const [name, code] of Object.entries(responseErrorCodes)) {
        assert.strictEqual<number>(code, Number(driverCodes[name as keyof typeof driverCodes]), name)
      }
      const invalid = new cassandra.errors.ResponseError(driverCodes.invalid, "Invalid column name")
      assert.isTrue(isResponseError(invalid, responseErrorCodes.invalid))
      assert.isFalse(isResponseError(invalid, responseErrorCodes.syntaxError))
      assert.isFalse(
        isResponseError(Object.assign(new Error("x"), { code: driverCodes.invalid }), responseErrorCodes.invalid)
      )
    })
  )
})
