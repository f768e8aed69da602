import { CurrentCaller, DexMonApi } from "@dexmon/api"
import { Effect, Layer } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { Ingestion } from "./Ingestion.ts"

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
          return "readings" in payload
            ? yield* ingestion.accept(caller.userId, "SENSOR", payload.readings, (i) => `readings[${i}].`)
            : yield* ingestion.accept(caller.userId, "SENSOR", [payload], () => "")
        })
      )
      .handle(
        "postManual",
        Effect.fn("IngestionHttp.postManual")(function* ({ payload }) {
          const caller = yield* CurrentCaller
          return yield* ingestion.accept(caller.userId, "MANUAL", [payload], () => "")
        })
      )
  })
).pipe(Layer.provide(Ingestion.layer))
