import { join } from "node:path"
import { PgClient } from "@effect/sql-pg"
import { Config, Effect, Layer, Option, type Redacted } from "effect"
import { requireEmbeddedAllowed } from "../DeploymentProfile.ts"
import { EmbeddedPostgres } from "./EmbeddedPostgres.ts"

/**
 * The PostgreSQL connection shared by the PostgreSQL layers of every port.
 * `DATABASE_URL` selects a real server (TimescaleDB or PostgreSQL); without it
 * DexMon starts an embedded server under `DEXMON_DATA_DIR`, except in the
 * production profile, where a missing URL is a start-up error.
 */
export const layerPgClient = (url: Redacted.Redacted<string>, options?: { readonly maxConnections?: number }) =>
  PgClient.layer({
    url,
    maxConnections: options?.maxConnections ?? 20,
    applicationName: "dexmon"
  })

export const layerEmbedded = (options: { readonly dataDir: string; readonly port: number }) =>
  Layer.unwrap(
    Effect.gen(function* () {
      const embedded = yield* EmbeddedPostgres
      return layerPgClient(embedded.url)
    })
  ).pipe(Layer.provideMerge(EmbeddedPostgres.layer(options)))

export const layerConfig = Layer.unwrap(
  Effect.gen(function* () {
    const url = yield* Config.option(Config.Redacted("DATABASE_URL"))
    if (Option.isSome(url)) return layerPgClient(url.value)
    yield* requireEmbeddedAllowed("DATABASE_URL")
    const dataDir = yield* Config.String("DEXMON_DATA_DIR").pipe(Config.withDefault(".data"))
    const port = yield* Config.Port("DEXMON_EMBEDDED_PG_PORT").pipe(Config.withDefault(54329))
    return Layer.orDie(layerEmbedded({ dataDir: join(dataDir, "postgres"), port }))
  })
)
