import { Context, Effect, Layer, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { layerPgClient } from "../postgres/Database.ts"
import { requiredServer } from "./RequiredServer.ts"

/** How a test database differs from the server's default. */
export interface ServerPostgresTestOptions {
  /**
   * An ICU locale (`en-US`) for the database's default collation, as a production server initialised
   * with a language's locale has: text then sorts by that language's rules, not by code unit.
   */
  readonly icuLocale?: string
}

/**
 * A fresh database on the real PostgreSQL server `DATABASE_URL` names (the
 * machine's PostgreSQL 15 under `pnpm test`), dropped when the layer is
 * released, so each test file starts from an empty schema.
 */
export const layerServerPostgresTestWith = (options: ServerPostgresTestOptions) =>
  Layer.unwrap(
    Effect.gen(function* () {
      const serverUrl = new URL(requiredServer("DATABASE_URL"))
      const database = `dexmon_test_${Date.now().toString(36)}_${Math.floor(Math.random() * 1e6)}`
      const admin = Context.get(
        yield* Layer.build(layerPgClient(Redacted.make(serverUrl.toString()), { maxConnections: 1 })),
        SqlClient.SqlClient
      )
      const collation =
        options.icuLocale === undefined
          ? ""
          : ` TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C' LOCALE_PROVIDER icu ICU_LOCALE '${options.icuLocale}'`
      yield* Effect.acquireRelease(admin.unsafe(`CREATE DATABASE ${database}${collation}`), () =>
        Effect.ignore(admin.unsafe(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`))
      )
      const url = new URL(serverUrl)
      url.pathname = `/${database}`
      return layerPgClient(Redacted.make(url.toString()))
    })
  ).pipe(Layer.orDie)

/** {@link layerServerPostgresTestWith} the server's defaults. */
export const layerServerPostgresTest = layerServerPostgresTestWith({})
