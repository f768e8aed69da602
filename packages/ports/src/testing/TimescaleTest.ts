import { Effect, Layer, Redacted } from "effect"
import { privateTimescale } from "../../../../infra/timescale/Timescale.ts"
import { layerPgClient } from "../postgres/Database.ts"

/**
 * A TimescaleDB server of the test file's own (PGlite with the extension, PostgreSQL 17.5 as WASM,
 * over the wire protocol; see infra/timescale), in memory, stopped when the layer is released. It
 * serves one session at a time, so the pool has one connection: a case that needs two sessions at
 * once cannot run on it.
 */
export const layerTimescaleTest = Layer.unwrap(
  Effect.gen(function* () {
    const server = yield* Effect.acquireRelease(
      Effect.promise(() => privateTimescale()),
      (started) => Effect.promise(() => started.stop())
    )
    return layerPgClient(Redacted.make(server.url), { maxConnections: 1 })
  })
).pipe(Layer.orDie)
