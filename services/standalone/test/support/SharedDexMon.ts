import { DexMonClient } from "@dexmon/sdk"
import { type DexMonProcess, makeDexMonProcess } from "@dexmon/testing"
import { Context, Effect, Layer } from "effect"

/**
 * One DexMon on its embedded defaults (`pnpm start`'s process) shared by the tests of a file, each test its own
 * user: `layer(SharedDexMon.layer, ...)` of `@effect/vitest` starts it once.
 */
export class SharedDexMon extends Context.Service<SharedDexMon, DexMonProcess>()("test/support/SharedDexMon") {
  static readonly layer = Layer.effect(
    SharedDexMon,
    Effect.gen(function* () {
      const dexmon = yield* makeDexMonProcess
      yield* dexmon.start
      return dexmon
    })
  )
}

/** DexMon's own API as `user` (the development caller), through the SDK. */
export const asUser = <A, E>(user: string, effect: Effect.Effect<A, E, DexMonClient>) =>
  Effect.flatMap(SharedDexMon, (dexmon) =>
    Effect.provide(effect, DexMonClient.layer({ baseUrl: dexmon.baseUrl, userId: user }))
  )

/** A new Nightscout API secret of `user`, as the user makes one for an uploader: the created credential. */
export const apiSecretOf = (user: string) =>
  asUser(
    user,
    Effect.flatMap(DexMonClient, (client) => client.nightscoutCredentials.create({ payload: { kind: "api_secret" } }))
  )

/** The first page (up to 1,000) of `user`'s readings in `[from, to)`. */
export const readingsOf = (user: string, from: number, to: number) =>
  asUser(
    user,
    Effect.flatMap(DexMonClient, (client) => client.readings.list({ query: { from, to, limit: 1000 } }))
  )
