import { DexMonApi } from "@dexmon/api"
import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { Readiness } from "./Readiness.ts"

/** `/healthz` answers while the process runs; `/readyz` only while every store this process needs answers. */
export const HealthHttp = HttpApiBuilder.group(
  DexMonApi,
  "health",
  Effect.fn(function* (handlers) {
    const readiness = yield* Readiness
    return handlers
      .handle("healthz", () => Effect.succeed({ status: "ok" as const, checks: {} }))
      .handle(
        "readyz",
        Effect.fn("HealthHttp.readyz")(function* () {
          const checks = yield* readiness.check
          const ready = Object.values(checks).every((status) => status === "ok")
          return ready
            ? { status: "ok" as const, checks }
            : yield* Effect.fail({ status: "unavailable" as const, checks })
        })
      )
  })
)
