import { CurrentCaller, DexMonApi, ServiceUnavailable } from "@dexmon/api"
import { AlertStore, ReadingStore } from "@dexmon/ports"
import { Effect, Layer } from "effect"
import { HttpApiBuilder } from "effect/http-api"

const DEFAULT_PAGE_SIZE = 100

/** Store failures are the server's problem: logged, and answered 503 so clients retry. */
const unavailable = (what: string) => (error: { readonly _tag: string }) =>
  Effect.logError(`${what} failed`, error).pipe(
    Effect.andThen(Effect.fail(new ServiceUnavailable({ message: `${what} is unavailable; retry later` })))
  )

export const ReadingsHttp = HttpApiBuilder.group(
  DexMonApi,
  "readings",
  Effect.fn(function* (handlers) {
    const readings = yield* ReadingStore
    return handlers.handle(
      "list",
      Effect.fn("ReadingsHttp.list")(function* ({ query }) {
        const caller = yield* CurrentCaller
        return yield* readings
          .list({
            user_id: caller.userId,
            from: query.from,
            to: query.to,
            sensor_id: query.sensor_id,
            limit: query.limit ?? DEFAULT_PAGE_SIZE,
            cursor: query.cursor
          })
          .pipe(Effect.catchTag("ReadingStoreError", unavailable("the readings store")))
      })
    )
  })
)

export const AlertsHttp = HttpApiBuilder.group(
  DexMonApi,
  "alerts",
  Effect.fn(function* (handlers) {
    const alerts = yield* AlertStore
    return handlers.handle(
      "list",
      Effect.fn("AlertsHttp.list")(function* ({ query }) {
        const caller = yield* CurrentCaller
        return yield* alerts
          .list({
            user_id: caller.userId,
            from: query.from,
            to: query.to,
            limit: query.limit ?? DEFAULT_PAGE_SIZE,
            cursor: query.cursor
          })
          .pipe(Effect.catchTag("AlertStoreError", unavailable("the alert store")))
      })
    )
  })
)

export const GatewayHttp = Layer.mergeAll(ReadingsHttp, AlertsHttp)
