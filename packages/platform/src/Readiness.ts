import { Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"

type Status = "ok" | "unavailable"

/** The stores a process depends on, each with a cheap probe, for `/readyz`. */
export class Readiness extends Context.Service<
  Readiness,
  {
    readonly check: Effect.Effect<Record<string, Status>>
  }
>()("dexmon/platform/Readiness") {
  /** Probes the PostgreSQL the embedded stores (or the readings store) live in. */
  static readonly layerSql = Layer.effect(
    Readiness,
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const probe = sql`SELECT 1`.pipe(
        Effect.timeout("2 seconds"),
        Effect.as<Status>("ok"),
        Effect.orElseSucceed((): Status => "unavailable")
      )
      return Readiness.of({ check: Effect.map(probe, (database) => ({ database })) })
    })
  )
}
