import { Effect } from "effect"
import { Migrator, type SqlClient } from "effect/sql"

/**
 * Runs one port's migrations with Effect's SQL migrator. Each port keeps its own
 * migrations table, because in production the ports live in different
 * databases (the event log in Kafka, readings in TimescaleDB, alerts in Cassandra).
 */
export const runMigrations = (
  port: string,
  migrations: Record<string, Effect.Effect<void, unknown, SqlClient.SqlClient>>
) =>
  Migrator.make({})({ loader: Migrator.fromRecord(migrations), table: `dexmon_migrations_${port}` }).pipe(
    Effect.withSpan("Migrations.run", { attributes: { port } }),
    Effect.orDie
  )
