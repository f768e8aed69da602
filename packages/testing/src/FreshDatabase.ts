import { randomUUID } from "node:crypto"
import { Database } from "@dexmon/ports"
import { requiredServer } from "@dexmon/ports/testing"
import { Context, Effect, Layer, Redacted } from "effect"
import { SqlClient } from "effect/sql"

export interface FreshDatabaseOptions {
  /** The database's name; default a new `dexmon_test_<random>`, so concurrent suites never meet. */
  readonly name?: string
  /** The server, as a URL to any of its databases; default the harness's `DATABASE_URL`. */
  readonly server?: string
  /**
   * `CREATE DATABASE ... TEMPLATE`: a byte-identical copy of this database (same ids, same
   * `created_at`). PostgreSQL refuses while anything is connected to the template.
   */
  readonly template?: string
}

/** The URL of database `name` on the server `server` points at. */
export const databaseUrl = (server: string, name: string) => {
  const url = new URL(server)
  url.pathname = `/${name}`
  return url.toString()
}

/** A SQL client on `url` for the scope (the pool closes with it). */
export const sqlClient = (url: string, options: { readonly maxConnections?: number } = {}) =>
  Effect.map(
    Layer.build(Database.layerPgClient(Redacted.make(url), { maxConnections: options.maxConnections ?? 2 })),
    (context) => Context.get(context, SqlClient.SqlClient)
  )

/**
 * A database of its own on a real PostgreSQL server, dropped (`WITH (FORCE)`) when the scope
 * closes: each suite starts from an empty schema and leaves nothing behind. Answers its name, its
 * URL and a client on it; the client's pool opens connections only when used, so an unused fresh
 * database can still serve as another's `template`.
 */
export const freshDatabase = Effect.fn("freshDatabase")(function* (options: FreshDatabaseOptions = {}) {
  const server = options.server ?? requiredServer("DATABASE_URL")
  // Not `Random`: a test's Random may be seeded, and suites running at once on one server must not meet.
  const name = options.name ?? `dexmon_test_${(yield* Effect.sync(randomUUID)).replaceAll("-", "")}`
  const admin = yield* sqlClient(server, { maxConnections: 1 })
  const create =
    options.template === undefined ? `CREATE DATABASE ${name}` : `CREATE DATABASE ${name} TEMPLATE ${options.template}`
  yield* Effect.acquireRelease(admin.unsafe(create), () =>
    Effect.ignore(admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`))
  )
  const url = databaseUrl(server, name)
  return { name, url, sql: yield* sqlClient(url) }
})
