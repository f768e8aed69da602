import { Caller, CurrentCaller, Unauthorized } from "@dexmon/api"
import { UserId } from "@dexmon/domain"
import { Config, Effect, Layer, Schema } from "effect"
import { HttpServerRequest } from "effect/http"

const isUserId = Schema.is(UserId)

/**
 * The caller until authentication lands: the `X-User-Id` header when present,
 * otherwise the development user (`DEXMON_DEV_USER_ID`, default `dev-user`).
 * Handlers only ever see `CurrentCaller`, so the JWT middleware replaces this
 * layer without touching them.
 */
export const DevelopmentCallerLive = Layer.effect(
  Caller,
  Effect.gen(function* () {
    const devUser = yield* Config.String("DEXMON_DEV_USER_ID").pipe(Config.withDefault("dev-user"))
    return Caller.of((httpEffect) =>
      Effect.gen(function* () {
        const request = yield* HttpServerRequest.HttpServerRequest
        const userId = request.headers["x-user-id"] ?? devUser
        if (!isUserId(userId)) {
          return yield* new Unauthorized({
            message: "X-User-Id must be 1 to 128 characters of A-Z, a-z, 0-9, . _ @ : | -"
          })
        }
        return yield* Effect.provideService(
          httpEffect,
          CurrentCaller,
          CurrentCaller.of({ userId: UserId.make(userId) })
        )
      })
    )
  })
)
