import { SensorId, UserId } from "@dexmon/domain"
import { assert, layer } from "@effect/vitest"
import cassandra from "cassandra-driver"
import { ConfigProvider, Effect, Layer, Option } from "effect"
import {
  AlertStore,
  AlertStoreError,
  CassandraAlertStateStore,
  CassandraAlertStore,
  CassandraSession,
  nextStateVersion
} from "../src/index.ts"
import { requiredServer } from "../src/testing/index.ts"
import { alertStateStoreContract } from "./contracts/AlertStateStoreContract.ts"
import {
  alertStoreContract,
  assertLegacyAlertReadsBack,
  episode,
  legacyAlertRow
} from "./contracts/AlertStoreContract.ts"

const contactPoints = requiredServer("CASSANDRA_CONTACT_POINTS")

/** A keyspace of this run's own, on the real Cassandra the test runner started. */
const keyspaceConfig = (keyspace: string) =>
  ConfigProvider.layer(ConfigProvider.fromEnvRecord({ ...process.env, CASSANDRA_KEYSPACE: keyspace }))
const run = Date.now().toString(36)
const config = keyspaceConfig(`dexmon_test_${run}`)

/** The columns an earlier version's tables lack; every start adds them where they are missing. */
const notificationColumns = [
  "acknowledged_at",
  "acknowledged_by",
  "snoozed_until",
  "notification_count",
  "last_notified_at",
  "silenced_by"
]

/** The names of a table's columns, as the keyspace's schema lists them now. */
const columnsOf = (session: CassandraSession["Service"], table: string) =>
  session
    .runner((fields) => new AlertStoreError(fields))
    .run("columns", "SELECT column_name FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ?", [
      session.config.keyspace,
      table
    ])
    .pipe(Effect.map((result) => result.rows.map((row) => String(row.column_name))))

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
        assert.includeMembers(yield* columnsOf(session, "glucose_alerts"), [
          "started_at",
          "ended_at",
          "extreme_value",
          "last_value",
          "last_reading_at",
          "status",
          "glucose_value",
          ...notificationColumns
        ])
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

// A keyspace as the episode version left it: its three tables without the notification columns, an open episode in them.
const episodesConfig = keyspaceConfig(`dexmon_episodes_${run}`)
layer(CassandraSession.layer.pipe(Layer.provide(episodesConfig)), { timeout: 120_000, excludeTestServices: true })(
  `alerts written before notifications, on Cassandra at ${contactPoints}`,
  (it) => {
    it.effect("the new store adds the notification columns to both tables; earlier episodes read back unnotified", () =>
      Effect.gen(function* () {
        const session = yield* CassandraSession
        const { run: cql } = session.runner((fields) => new AlertStoreError(fields))
        const keyspace = session.config.keyspace
        // The statements CassandraAlertStore.ts made the tables with before notifications were recorded.
        yield* cql(
          "episode table",
          `CREATE TABLE IF NOT EXISTS ${keyspace}.glucose_alerts (
            user_id text, timestamp timestamp, alert_id uuid, sensor_id text, glucose_value double,
            alert_type text, status text,
            started_at timestamp, ended_at timestamp, extreme_value double, last_value double, last_reading_at timestamp,
            PRIMARY KEY ((user_id), timestamp, alert_id)
          ) WITH CLUSTERING ORDER BY (timestamp DESC, alert_id DESC)`
        )
        yield* cql(
          "by-id table",
          `CREATE TABLE IF NOT EXISTS ${keyspace}.glucose_alerts_by_id (alert_id uuid PRIMARY KEY, user_id text, timestamp timestamp)`
        )
        yield* cql(
          "open table",
          `CREATE TABLE IF NOT EXISTS ${keyspace}.glucose_alerts_open (
            user_id text, sensor_id text, alert_type text, alert_id uuid, timestamp timestamp, glucose_value double,
            status text, started_at timestamp, extreme_value double, last_value double, last_reading_at timestamp,
            PRIMARY KEY ((user_id), sensor_id, alert_type, alert_id)
          )`
        )
        const user = `cqlnotif${run}`
        const start = Date.parse("2026-11-20T00:00:00.000Z")
        const earlier = episode(user, `${user}-s`, "LOW", start, {
          glucose_value: 66,
          extreme_value: 58,
          last_value: 61,
          last_reading_at: start + 10 * 60_000
        })
        const id = cassandra.types.Uuid.fromString(earlier.alert_id)
        yield* cql(
          "episode row",
          `INSERT INTO ${keyspace}.glucose_alerts (user_id, timestamp, alert_id, sensor_id, glucose_value, alert_type,
             status, started_at, ended_at, extreme_value, last_value, last_reading_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          [
            earlier.user_id,
            new Date(earlier.timestamp),
            id,
            earlier.sensor_id,
            earlier.glucose_value,
            earlier.alert_type,
            earlier.status,
            new Date(earlier.started_at),
            null,
            earlier.extreme_value,
            earlier.last_value,
            new Date(earlier.last_reading_at)
          ]
        )
        yield* cql(
          "by-id row",
          `INSERT INTO ${keyspace}.glucose_alerts_by_id (alert_id, user_id, timestamp) VALUES (?, ?, ?)`,
          [id, earlier.user_id, new Date(earlier.timestamp)]
        )
        yield* cql(
          "open row",
          `INSERT INTO ${keyspace}.glucose_alerts_open (user_id, sensor_id, alert_type, alert_id, timestamp,
             glucose_value, status, started_at, extreme_value, last_value, last_reading_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          [
            earlier.user_id,
            earlier.sensor_id,
            earlier.alert_type,
            id,
            new Date(earlier.timestamp),
            earlier.glucose_value,
            earlier.status,
            new Date(earlier.started_at),
            earlier.extreme_value,
            earlier.last_value,
            new Date(earlier.last_reading_at)
          ]
        )

        const store = CassandraAlertStore.layer.pipe(Layer.provide(episodesConfig))
        const query = { user_id: UserId.make(user), from: start, to: start + 86_400_000, limit: 10 }
        const readBack = Effect.gen(function* () {
          const alerts = yield* AlertStore
          return {
            get: yield* alerts.get(UserId.make(user), earlier.alert_id),
            list: (yield* alerts.list(query)).items,
            open: yield* alerts.listOpen(UserId.make(user))
          }
        })
        // `episode` fills the notification fields with `unnotifiedAlertFields`, as the empty columns read back.
        assert.deepStrictEqual(yield* readBack.pipe(Effect.provide(store)), {
          get: Option.some(earlier),
          list: [earlier],
          open: [earlier]
        })
        assert.includeMembers(yield* columnsOf(session, "glucose_alerts"), notificationColumns)
        assert.includeMembers(yield* columnsOf(session, "glucose_alerts_open"), notificationColumns)

        // The migrated tables take the new fields, and a second start keeps them.
        const told = episode(user, `${user}-s`, "LOW", start, {
          glucose_value: 66,
          extreme_value: 58,
          last_value: 61,
          last_reading_at: start + 10 * 60_000,
          acknowledged_at: start + 12 * 60_000,
          acknowledged_by: UserId.make(user),
          notification_count: 1,
          last_notified_at: start,
          silenced_by: "ACKNOWLEDGED"
        })
        yield* Effect.gen(function* () {
          const alerts = yield* AlertStore
          yield* alerts.save([told])
        }).pipe(Effect.provide(store))
        assert.deepStrictEqual(yield* readBack.pipe(Effect.provide(store)), {
          get: Option.some(told),
          list: [told],
          open: [told]
        })
      })
    )
  }
)

// A keyspace as the release with conditional state writes left it: `alert_sensor_state` at a revision, and its check.
const conditionalStatesConfig = keyspaceConfig(`dexmon_states_${run}`)
layer(CassandraSession.layer.pipe(Layer.provide(conditionalStatesConfig)), {
  timeout: 120_000,
  excludeTestServices: true
})(`sensor states written with lightweight transactions, on Cassandra at ${contactPoints}`, (it) => {
  it.effect(
    "a sensor only in the former table reads from it, is due by its check, and moves on at its first write",
    () =>
      Effect.gen(function* () {
        const session = yield* CassandraSession
        const { run: cql } = session.runner((fields) => new AlertStoreError(fields))
        const { keyspace } = session.config
        const checkAt = Date.parse("2026-11-20T00:00:00.000Z")
        yield* cql(
          "seed",
          `CREATE TABLE ${keyspace}.alert_sensor_state (
          sensor_id text PRIMARY KEY, user_id text, log_partition int, state text, check_at timestamp, revision bigint
        )`
        )
        yield* cql(
          "seed",
          `CREATE TABLE ${keyspace}.alert_sensor_checks (
          log_partition int, sensor_id text, check_at timestamp, PRIMARY KEY ((log_partition), sensor_id)
        )`
        )
        yield* cql(
          "seed",
          `INSERT INTO ${keyspace}.alert_sensor_state (sensor_id, user_id, log_partition, state, check_at, revision)
          VALUES ('kept', 'u', 2, '{"position":41}', ?, 3)`,
          [new Date(checkAt)],
          { prepare: true }
        )
        yield* cql(
          "seed",
          `INSERT INTO ${keyspace}.alert_sensor_checks (log_partition, sensor_id, check_at) VALUES (2, 'kept', ?)
          USING TIMESTAMP 3`,
          [new Date(checkAt)],
          { prepare: true }
        )

        const store = yield* CassandraAlertStateStore.make
        const kept = SensorId.make("kept")
        const former = { sensor_id: kept, user_id: UserId.make("u"), log_partition: 2, state: '{"position":41}' }
        assert.deepStrictEqual((yield* store.load([kept, SensorId.make("never")])).get(kept), {
          ...former,
          check_at: checkAt,
          version: 3n
        })
        assert.deepStrictEqual(yield* store.due(2, checkAt), [kept])

        // The first write of this release outranks the revision, and its check replaces the former one.
        const next = {
          ...former,
          state: '{"position":42}',
          check_at: checkAt + 60_000,
          version: nextStateVersion(42, 3n, 0)
        }
        yield* store.save([next])
        assert.deepStrictEqual((yield* store.load([kept])).get(kept), next)
        assert.deepStrictEqual(yield* store.due(2, checkAt), [])
        assert.deepStrictEqual(yield* store.due(2, checkAt + 60_000), [kept])
      })
  )
})
