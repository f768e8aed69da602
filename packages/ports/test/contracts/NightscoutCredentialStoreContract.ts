import { createHash, randomUUID } from "node:crypto"
import {
  credentialDigests,
  credentialHint,
  type NightscoutCredential,
  NightscoutCredentialId,
  type NightscoutCredentialKind,
  type NightscoutRole,
  newAccessToken,
  newApiSecret,
  presentedDigest,
  UserId
} from "@dexmon/domain"
import { assert, layer } from "@effect/vitest"
import { Effect, Exit, type Layer, Option } from "effect"
import { NightscoutCredentialStore } from "../../src/index.ts"

let runCounter = 0
const newRun = () => `ns${Date.now().toString(36)}${runCounter++}`

/** A credential as the gateway creates one, with the secret it was made from. */
const credentialOf = (user: UserId, kind: NightscoutCredentialKind, role: NightscoutRole, createdAt: number) => {
  const secret = kind === "api_secret" ? newApiSecret() : newAccessToken(role)
  const credential: NightscoutCredential = {
    id: NightscoutCredentialId.make(randomUUID()),
    user_id: user,
    kind,
    role,
    hint: credentialHint(secret),
    created_at: createdAt
  }
  return { credential, secret, digests: credentialDigests(kind, secret) }
}

const hex = (algorithm: string, text: string) => createHash(algorithm).update(text).digest("hex")

/** The behaviour every layer of the Nightscout credential store port must have. */
export const nightscoutCredentialStoreContract = (
  name: string,
  credentialsLayer: Layer.Layer<NightscoutCredentialStore, unknown>
) =>
  layer(credentialsLayer, { timeout: 60_000, excludeTestServices: true })(
    `NightscoutCredentialStore contract: ${name}`,
    (it) => {
      it.effect(
        "an API secret is found by its SHA-1 and its SHA-512, either case; a token by itself and its SHA-1; nothing else",
        () =>
          Effect.gen(function* () {
            const store = yield* NightscoutCredentialStore
            const user = UserId.make(`${newRun()}-alice`)
            const apiSecret = credentialOf(user, "api_secret", "uploader", 1_000)
            const token = credentialOf(user, "token", "readable", 2_000)
            yield* store.create(apiSecret.credential, apiSecret.digests)
            yield* store.create(token.credential, token.digests)
            const identityOf = (credential: NightscoutCredential) => ({
              credential_id: credential.id,
              user_id: credential.user_id,
              kind: credential.kind,
              role: credential.role
            })
            for (const presented of [
              hex("sha1", apiSecret.secret),
              hex("sha1", apiSecret.secret).toUpperCase(),
              hex("sha512", apiSecret.secret)
            ]) {
              const found = yield* store.authenticate(presentedDigest(presented))
              assert.deepStrictEqual(found, Option.some(identityOf(apiSecret.credential)), presented)
            }
            // A token as itself, or as its SHA-1 (Nightscout takes that in `api-secret` too).
            for (const presented of [token.secret, hex("sha1", token.secret)]) {
              const found = yield* store.authenticate(presentedDigest(presented))
              assert.deepStrictEqual(found, Option.some(identityOf(token.credential)), presented)
            }
            // The secret itself (not its hash), a token's SHA-512, a near miss: none authenticates.
            for (const presented of [apiSecret.secret, hex("sha512", token.secret), `${token.secret}x`, ""]) {
              assert.isTrue(Option.isNone(yield* store.authenticate(presentedDigest(presented))), presented)
            }
          })
      )

      it.effect("lists the user's credentials oldest first, another user's never; revoking one stops it", () =>
        Effect.gen(function* () {
          const store = yield* NightscoutCredentialStore
          const run = newRun()
          const [alice, bob] = [UserId.make(`${run}-alice`), UserId.make(`${run}-bob`)]
          const second = credentialOf(alice, "token", "uploader", 2_000)
          const first = credentialOf(alice, "api_secret", "uploader", 1_000)
          const bobs = credentialOf(bob, "token", "readable", 1_500)
          for (const { credential, digests } of [second, first, bobs]) yield* store.create(credential, digests)
          assert.deepStrictEqual(yield* store.list(alice), [first.credential, second.credential])
          assert.deepStrictEqual(yield* store.list(bob), [bobs.credential])

          assert.isFalse(yield* store.revoke(bob, first.credential.id), "another user's credential is not bob's")
          assert.isTrue(Option.isSome(yield* store.authenticate(presentedDigest(hex("sha1", first.secret)))))
          assert.isTrue(yield* store.revoke(alice, first.credential.id))
          assert.isFalse(yield* store.revoke(alice, first.credential.id), "already revoked")
          assert.deepStrictEqual(yield* store.list(alice), [second.credential])
          for (const presented of [hex("sha1", first.secret), hex("sha512", first.secret)]) {
            assert.isTrue(Option.isNone(yield* store.authenticate(presentedDigest(presented))), "revoked")
          }
          assert.isTrue(Option.isSome(yield* store.authenticate(presentedDigest(second.secret))), "the other stays")
        })
      )

      it.effect("a digest already stored is refused, and the credential that brought it is not stored", () =>
        Effect.gen(function* () {
          const store = yield* NightscoutCredentialStore
          const user = UserId.make(`${newRun()}-alice`)
          const original = credentialOf(user, "token", "readable", 1_000)
          yield* store.create(original.credential, original.digests)
          const clash = credentialOf(user, "token", "uploader", 2_000)
          const refused = yield* Effect.exit(store.create(clash.credential, original.digests))
          assert.isTrue(Exit.isFailure(refused))
          assert.deepStrictEqual(yield* store.list(user), [original.credential])
        })
      )
    }
  )
