import { Context, Effect, Layer, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { layerPgClient } from "../postgres/Database.ts"
import { requiredServer } from "./RequiredServer.ts"

/**
 * A fresh database on the real PostgreSQL server `DATABASE_URL` names (the
 * machine's PostgreSQL 15 under `pnpm test`), dropped when the layer is
 * released, so each test file starts from an empty schema.
 */
export const layerServerPostgresTest = Layer.unwrap(
  Effect.gen(function* () {
    const serverUrl = new URL(requiredServer("DATABASE_URL"))
    const database = `dexmon_test_${Date.now().toString(36)}_${Math.floor(Math.random() * 1e6)}`
    const admin = Context.get(
      yield* Layer.build(layerPgClient(Redacted.make(serverUrl.toString()), { maxConnections: 1 })),
      SqlClient.SqlClient
    )
    yield* Effect.acquireRelease(admin.unsafe(`CREATE DATABASE ${database}`), () =>
      Effect.ignore(admin.unsafe(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`))
    )
    const url = new URL(serverUrl)
    url.pathname = `/${database}`
    return layerPgClient(Redacted.make(url.toString()))
  })
).pipe(Layer.orDie)
