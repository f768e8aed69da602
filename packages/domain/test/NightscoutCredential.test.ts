import { createHash } from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import { credentialDigests, credentialHint, newAccessToken, newApiSecret, presentedDigest } from "../src/index.ts"

const hex = (algorithm: string, text: string) => createHash(algorithm).update(text).digest("hex")

describe("Nightscout credentials", () => {
  it("generate API secrets of 24 letters and digits and tokens named by their role, never twice the same", () => {
    const secrets = Array.from({ length: 2_000 }, newApiSecret)
    for (const secret of secrets) assert.match(secret, /^[A-HJ-NP-Za-km-z2-9]{24}$/)
    assert.strictEqual(new Set(secrets).size, secrets.length)
    assert.match(newAccessToken("readable"), /^readable-[A-HJ-NP-Za-km-z2-9]{16}$/)
    assert.match(newAccessToken("uploader"), /^uploader-[A-HJ-NP-Za-km-z2-9]{16}$/)
    // Every character of the alphabet turns up: no part of it is left out by the draw.
    assert.strictEqual(new Set(secrets.join("")).size, 57)
  })

  it("find a secret by the SHA-256 of each form a client sends, and store nothing a client could send", () => {
    const secret = newApiSecret()
    const digests = credentialDigests("api_secret", secret)
    assert.deepStrictEqual(digests, [presentedDigest(hex("sha1", secret)), presentedDigest(hex("sha512", secret))])
    assert.strictEqual(presentedDigest(hex("sha1", secret).toUpperCase()), digests[0])
    for (const sent of [secret, hex("sha1", secret), hex("sha512", secret)]) assert.notInclude(digests, sent)
    const token = newAccessToken("readable")
    assert.deepStrictEqual(credentialDigests("token", token), [
      presentedDigest(token),
      presentedDigest(hex("sha1", token))
    ])
  })

  it("hint at a credential by the start of its random part", () => {
    assert.strictEqual(credentialHint("Q7xkAbcdEfghJkmnPqrsTuvw"), "Q7xk")
    assert.strictEqual(credentialHint("readable-Zz9aBcdEfgHjkMnp"), "Zz9a")
  })
})
