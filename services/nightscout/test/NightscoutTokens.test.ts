import { NightscoutCredentialId, UserId } from "@dexmon/domain"
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Exit, Layer, Option } from "effect"
import { TestClock } from "effect/testing"
import { NIGHTSCOUT_JWT_LIFETIME_SECONDS, NightscoutTokens } from "../src/NightscoutTokens.ts"

const claims = {
  userId: UserId.make("tokens-user"),
  credentialId: NightscoutCredentialId.make("0a99b4bf-9a84-4354-aebd-b10b6988cf38"),
  role: "readable" as const
}
// Fresh: layers are shared by identity, and each of these must read its own secret.
const withSecret = (secret: string) =>
  Layer.fresh(NightscoutTokens.layerConfig).pipe(
    Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: { NIGHTSCOUT_JWT_SECRET: secret } })))
  )
const KEY = "a-random-secret-of-at-least-32-characters-0123"

describe("NightscoutTokens", () => {
  it.effect("a JWT it issued verifies to its claims until it expires; another key's does not", () =>
    Effect.gen(function* () {
      const tokens = yield* NightscoutTokens
      const { token } = yield* tokens.issue(claims)
      assert.deepStrictEqual(yield* tokens.verify(token), Option.some(claims))
      const other = yield* Effect.flatMap(NightscoutTokens, (others) => others.issue(claims)).pipe(
        Effect.provide(withSecret(`${KEY}-other`))
      )
      assert.isTrue(Option.isNone(yield* tokens.verify(other.token)))
      yield* TestClock.adjust(`${NIGHTSCOUT_JWT_LIFETIME_SECONDS + 1} seconds`)
      assert.isTrue(Option.isNone(yield* tokens.verify(token)))
    }).pipe(Effect.provide(withSecret(KEY)))
  )

  it.effect.each([
    ["shorter than 32 characters", "short-secret"],
    ["the manifests' placeholder", "CHANGE-ME-TO-32-OR-MORE-RANDOM-CHARACTERS"]
  ])("refuses a secret %s at start", ([, secret]) =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(Effect.provide(Effect.asVoid(NightscoutTokens), withSecret(secret ?? "")))
      assert.isTrue(Exit.isFailure(exit))
    })
  )
})
