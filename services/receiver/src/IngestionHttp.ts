import { CurrentCaller, DexMonApi } from "@dexmon/api"
import { Effect, Layer } from "effect"
import { HttpEffect, HttpServerResponse } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import { Ingestion } from "./Ingestion.ts"

/**
 * The `Retry-After` of a receiver's 503, in seconds: a full queue drains, and a broker that comes back
 * is written to again, within about this long.
 */
export const RETRY_AFTER_SECONDS = 5

/** Every 503 of an ingestion endpoint says when to try again. */
const withRetryAfter = <A, E extends { readonly _tag: string }, R>(accept: Effect.Effect<A, E, R>) =>
  Effect.tapError(accept, (error) =>
    error._tag === "ServiceUnavailable"
      ? HttpEffect.appendPreResponseHandler((_request, response) =>
          Effect.succeed(HttpServerResponse.setHeader(response, "retry-after", String(RETRY_AFTER_SECONDS)))
        )
      : Effect.void
  )

/** The ingestion endpoints: the HTTP edge of `Ingestion`. */
export const IngestionHttp = HttpApiBuilder.group(
  DexMonApi,
  "ingestion",
  Effect.fn(function* (handlers) {
    const ingestion = yield* Ingestion
    return handlers
      .handle(
        "postSensor",
        Effect.fn("IngestionHttp.postSensor")(function* ({ payload }) {
          const caller = yield* CurrentCaller
          return yield* (
            "readings" in payload
              ? ingestion.accept(caller.userId, "SENSOR", payload.readings, (i) => `readings[${i}].timestamp`)
              : ingestion.accept(caller.userId, "SENSOR", [payload], () => "timestamp")
          ).pipe(withRetryAfter)
        })
      )
      .handle(
        "postManual",
        Effect.fn("IngestionHttp.postManual")(function* ({ payload }) {
          const caller = yield* CurrentCaller
          return yield* ingestion.accept(caller.userId, "MANUAL", [payload], () => "timestamp").pipe(withRetryAfter)
        })
      )
  })
).pipe(Layer.provide(Ingestion.layer))
