import { assert, layer } from "@effect/vitest"
import cassandra from "cassandra-driver"
import { ConfigProvider, Effect, Layer } from "effect"
import {
  AlertStore,
  AlertStoreError,
  CassandraAlertStateStore,
  CassandraAlertStore,
  CassandraSession
} from "../src/index.ts"
import { requiredServer } from "../src/testing/index.ts"
import { alertStateStoreContract } from "./contracts/AlertStateStoreContract.ts"
import { alertStoreContract, assertLegacyAlertReadsBack, legacyAlertRow } from "./contracts/AlertStoreContract.ts"

const contactPoints = requiredServer("CASSANDRA_CONTACT_POINTS")

/** A keyspace of this run's own, on the real Cassandra the test runner started. */
const keyspaceConfig = (keyspace: string) =>
  ConfigProvider.layer(ConfigProvider.fromEnvRecord({ ...process.env, CASSANDRA_KEYSPACE: keyspace }))
const run = Date.now().toString(36)
const config = keyspaceConfig(`dexmon_test_${run}`)

alertStoreContract(`Cassandra at ${contactPoints}`, CassandraAlertStore.layer.pipe(Layer.provide(config)))
alertStateStoreContract(`Cassandra at ${contactPoints}`, CassandraAlertStateStore.layer.pipe(Layer.provide(config)))

// A keyspace as the seed left it: the table of one row per sent alert, with rows in it.
const legacyConfig = keyspaceConfig(`dexmon_legacy_${run}`)
layer(CassandraSession.layer.pipe(Layer.provide(legacyConfig)), { timeout: 120_000, excludeTestServices: true })(
  `alerts written before episodes, on Cassandra at ${contactPoints}`,
  (it) => {
    it.effect("the new store migrates the seed's table in place; its rows read back as resolved episodes", () =>
      Effect.gen(function* () {
        const session = yield* CassandraSession
        const { run: cql } = session.runner((fields) => new AlertStoreError(fields))
        const table = `${session.config.keyspace}.glucose_alerts`
        // The statement CassandraAlertStore.ts made the table with before episodes existed.
        yield* cql(
          "seed table",
          `CREATE TABLE IF NOT EXISTS ${table} (
            user_id text, timestamp timestamp, alert_id uuid, sensor_id text, glucose_value double,
            alert_type text, status text,
            PRIMARY KEY ((user_id), timestamp, alert_id)
          ) WITH CLUSTERING ORDER BY (timestamp DESC, alert_id DESC)`
        )
        const legacy = legacyAlertRow(`cql${run}`)
        yield* cql(
          "seed row",
          `INSERT INTO ${table} (user_id, timestamp, alert_id, sensor_id, glucose_value, alert_type, status)
           VALUES (?, ?, ?, ?, ?, ?, ?)`,
          [
            legacy.user_id,
            new Date(legacy.timestamp),
            cassandra.types.Uuid.fromString(legacy.alert_id),
            legacy.sensor_id,
            legacy.glucose_value,
            legacy.alert_type,
            legacy.status
          ]
        )

        const store = CassandraAlertStore.layer.pipe(Layer.provide(legacyConfig))
        yield* assertLegacyAlertReadsBack(legacy).pipe(Effect.provide(store))
        const columns = yield* cql(
          "columns",
          "SELECT column_name FROM system_schema.columns WHERE keyspace_name = ? AND table_name = 'glucose_alerts'",
          [session.config.keyspace]
        )
        assert.includeMembers(
          columns.rows.map((row) => String(row.column_name)),
          ["started_at", "ended_at", "extreme_value", "last_value", "last_reading_at", "status", "glucose_value"]
        )
        // A second start finds the migration recorded as done and keeps what was written since.
        const open = yield* Effect.gen(function* () {
          const alerts = yield* AlertStore
          return yield* alerts.listOpen(legacy.user_id)
        }).pipe(Effect.provide(store))
        assert.deepStrictEqual(
          open.map((alert) => [alert.alert_id, alert.extreme_value]),
          [[legacy.alert_id, 57]]
        )
      })
    )

    it.effect("state is read and written at LOCAL_QUORUM or stronger, whatever CASSANDRA_CONSISTENCY says", () =>
      Effect.sync(() => {
        const { consistencies } = cassandra.types
        assert.strictEqual(CassandraAlertStateStore.stateConsistency("ONE"), consistencies.localQuorum)
        assert.strictEqual(CassandraAlertStateStore.stateConsistency("LOCAL_ONE"), consistencies.localQuorum)
        assert.strictEqual(CassandraAlertStateStore.stateConsistency("LOCAL_QUORUM"), consistencies.localQuorum)
        assert.strictEqual(CassandraAlertStateStore.stateConsistency("QUORUM"), consistencies.quorum)
        assert.strictEqual(CassandraAlertStateStore.stateConsistency("ALL"), consistencies.all)
      })
    )
  }
)
