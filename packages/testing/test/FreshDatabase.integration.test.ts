import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { freshDatabase, sqlClient } from "../src/FreshDatabase.ts"
import { requiredServer } from "../src/index.ts"

const server = requiredServer("DATABASE_URL")

/** Whether a database of that name exists on the server. */
const exists = (name: string) =>
  Effect.scoped(
    Effect.gen(function* () {
      const admin = yield* sqlClient(server, { maxConnections: 1 })
      const rows = yield* admin<{ n: number }>`SELECT count(*)::int AS n FROM pg_database WHERE datname = ${name}`
      return rows[0]!.n === 1
    })
  )

describe("freshDatabase, on the harness's PostgreSQL", () => {
  it.live("creates an empty database of its own, with a client on it, and drops it when the scope closes", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const database = yield* freshDatabase().pipe(Scope.provide(scope))
      assert.match(database.name, /^dexmon_test_[0-9a-f]{32}$/)
      assert.isTrue(yield* exists(database.name))
      yield* database.sql`CREATE TABLE t (n int)`
      yield* database.sql`INSERT INTO t VALUES (1), (2)`
      assert.deepStrictEqual(yield* database.sql`SELECT n FROM t ORDER BY n`, [{ n: 1 }, { n: 2 }])
      yield* Scope.close(scope, Exit.void)
      assert.isFalse(yield* exists(database.name), "dropped with its scope, its client's connections too")
    })
  )

  it.live("copies a seeded database byte for byte with `template`, while the template's client is unused", () =>
    Effect.gen(function* () {
      const seeded = yield* freshDatabase()
      yield* Effect.scoped(
        Effect.gen(function* () {
          const seeding = yield* sqlClient(seeded.url)
          yield* seeding`CREATE TABLE t (n int, at timestamptz DEFAULT clock_timestamp())`
          yield* seeding`INSERT INTO t (n) SELECT generate_series(1, 100)`
        })
      )
      const copy = yield* freshDatabase({ template: seeded.name })
      const rowsOf = (sql: typeof seeded.sql) => sql`SELECT n, at FROM t ORDER BY n`
      assert.deepStrictEqual(yield* rowsOf(copy.sql), yield* rowsOf(seeded.sql))
      assert.lengthOf(yield* rowsOf(copy.sql), 100)
    })
  )
})
