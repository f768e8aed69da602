import { CurrentCaller, DexMonApi } from "@dexmon/api"
import { Effect, Layer } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { NightscoutCredentials } from "./NightscoutCredentials.ts"

/** The caller's Nightscout credentials over HTTP (`NightscoutCredentials` does the work). */
export const NightscoutCredentialsHttp = HttpApiBuilder.group(
  DexMonApi,
  "nightscoutCredentials",
  Effect.fn(function* (handlers) {
    const credentials = yield* NightscoutCredentials
    return handlers
      .handle(
        "create",
        Effect.fn("NightscoutCredentialsHttp.create")(function* ({ payload }) {
          return yield* credentials.create(yield* CurrentCaller, payload)
        })
      )
      .handle(
        "list",
        Effect.fn("NightscoutCredentialsHttp.list")(function* () {
          return { items: yield* credentials.list((yield* CurrentCaller).userId) }
        })
      )
      .handle(
        "revoke",
        Effect.fn("NightscoutCredentialsHttp.revoke")(function* ({ params }) {
          yield* credentials.revoke((yield* CurrentCaller).userId, params.credential_id)
        })
      )
  })
).pipe(Layer.provide(NightscoutCredentials.layer))
