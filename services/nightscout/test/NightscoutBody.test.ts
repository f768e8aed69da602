import { assert, describe, it } from "@effect/vitest"
import { bodyCredential, withoutCredentialFields } from "../src/NightscoutBody.ts"

describe("a credential in a posted body", () => {
  it("is a secret or token field of the object posted, or of the first entry of an array, and nowhere else", () => {
    assert.deepStrictEqual(bodyCredential({ sgv: 100, secret: " abc " }), { form: "secret", value: "abc" })
    assert.deepStrictEqual(bodyCredential([{ sgv: 100, token: "t-1" }, { sgv: 101 }]), { form: "token", value: "t-1" })
    assert.deepStrictEqual(bodyCredential([{ sgv: 100, secret: "s", token: "t" }]), { form: "secret", value: "s" })
    for (const body of [[{ sgv: 100 }, { sgv: 101, secret: "s" }], { secret: 7 }, { token: "" }, [], null, "s"]) {
      assert.isUndefined(bodyCredential(body), JSON.stringify(body))
    }
  })

  it("is taken out of every entry before the entries are read and echoed; the rest is left as posted", () => {
    assert.deepStrictEqual(withoutCredentialFields({ sgv: 100, secret: "s", token: "t" }), { sgv: 100 })
    assert.deepStrictEqual(withoutCredentialFields([{ sgv: 100, token: "t" }, { sgv: 101, secret: "s" }, "x"]), [
      { sgv: 100 },
      { sgv: 101 },
      "x"
    ])
    const untouched = [{ sgv: 100 }]
    assert.strictEqual(withoutCredentialFields(untouched), untouched)
  })
})
