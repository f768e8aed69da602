import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import {
  PostgresAlertSettingsStore,
  PostgresAlertStateStore,
  PostgresAlertStore,
  PostgresArchiveLedger,
  PostgresDeliveryOutbox,
  PostgresNightscoutCredentialStore,
  PostgresNightscoutDeviceStatusStore,
  PostgresSensorOwnership,
  PostgresWebhookStore,
  SqlReadingStore
} from "../src/index.ts"
import { runMigrations } from "../src/postgres/Migrations.ts"
import { layerServerPostgresTest, requiredServer } from "../src/testing/index.ts"
import { alertSettingsStoreContract } from "./contracts/AlertSettingsStoreContract.ts"
import { alertStateStoreContract } from "./contracts/AlertStateStoreContract.ts"
import {
  alertStoreContract,
  assertLegacyAlertReadsBack,
  insertLegacyAlertRowSql,
  legacyAlertRow
} from "./contracts/AlertStoreContract.ts"
import { archiveLedgerContract } from "./contracts/ArchiveLedgerContract.ts"
import { deliveryOutboxContract } from "./contracts/DeliveryOutboxContract.ts"
import { nightscoutCredentialStoreContract } from "./contracts/NightscoutCredentialStoreContract.ts"
import { nightscoutDeviceStatusStoreContract } from "./contracts/NightscoutDeviceStatusStoreContract.ts"
import { readingStoreContract } from "./contracts/ReadingStoreContract.ts"
import { sensorOwnershipContract } from "./contracts/SensorOwnershipContract.ts"
import { webhookStoreContract } from "./contracts/WebhookStoreContract.ts"

// The same suites as on the embedded server, on the real PostgreSQL server (PostgreSQL 15 here).
const server = requiredServer("DATABASE_URL").replace(/\/\/[^@]*@/, "//")
const both = Layer.mergeAll(
  PostgresArchiveLedger.layer.pipe(Layer.provideMerge(SqlReadingStore.layer)),
  PostgresAlertStore.layer,
  PostgresAlertStateStore.layer,
  PostgresSensorOwnership.layer,
  PostgresAlertSettingsStore.layer,
  PostgresWebhookStore.layer,
  PostgresNightscoutCredentialStore.layer,
  PostgresNightscoutDeviceStatusStore.layer,
  PostgresDeliveryOutbox.layer
).pipe(Layer.provideMerge(Layer.fresh(layerServerPostgresTest)))

layer(both, { timeout: 60_000, excludeTestServices: true })(`readings schema on ${server}`, (it) => {
  it.effect("has the unique key, monthly range partitions (no TimescaleDB here) and the history table", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const unique = yield* sql<{ definition: string }>`
        SELECT pg_get_constraintdef(oid) AS definition FROM pg_constraint
        WHERE conrelid = 'glucose_readings'::regclass AND contype = 'u'`
      assert.deepStrictEqual(
        unique.map((row) => row.definition),
        ['UNIQUE (sensor_id, "timestamp")']
      )
      const partitioning = yield* sql<{ strategy: string }>`
        SELECT partstrat AS strategy FROM pg_partitioned_table WHERE partrelid = 'glucose_readings'::regclass`
      assert.deepStrictEqual(
        partitioning.map((row) => row.strategy),
        ["r"]
      )
      const partitions = yield* sql<{ name: string }>`
        SELECT inhrelid::regclass::text AS name FROM pg_inherits WHERE inhparent = 'glucose_readings'::regclass`
      assert.isAtLeast(partitions.length, 4, "the hot window and the month ahead")
      assert.isTrue(partitions.every((row) => /^glucose_readings_\d{6}$/.test(row.name)))
      const history = yield* sql<{ count: number }>`
        SELECT count(*)::int AS count FROM information_schema.tables WHERE table_name = 'glucose_readings_history'`
      assert.strictEqual(history[0]!.count, 1)
    })
  )
})

layer(both, { timeout: 60_000, excludeTestServices: true })(`alerts schema on ${server}`, (it) => {
  it.effect("takes every kind, finds an episode by id and the open ones through their own indexes", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const checks = yield* sql<{ count: number }>`
        SELECT count(*)::int AS count FROM pg_constraint WHERE conrelid = 'glucose_alerts'::regclass AND contype = 'c'`
      assert.strictEqual(checks[0]!.count, 0, "0001's CHECK on alert_type is gone")
      const indexes = yield* sql<{ name: string; definition: string }>`
        SELECT indexname AS name, indexdef AS definition FROM pg_indexes
        WHERE tablename IN ('glucose_alerts', 'alert_sensor_state') AND indexname NOT LIKE '%pkey' ORDER BY indexname`
      assert.deepStrictEqual(
        indexes.map((index) => index.name),
        ["alert_sensor_state_checks", "glucose_alerts_by_id", "glucose_alerts_open"]
      )
      assert.match(indexes[1]!.definition, /UNIQUE INDEX .* \(alert_id\)/)
      assert.match(indexes[2]!.definition, /\(user_id\) WHERE \(\(ended_at IS NULL\) AND \(status <> 'SENT'::text\)\)/)
    })
  )

  it.effect("a row of the seed's shape (status SENT, no episode columns) reads back as a resolved episode", () =>
    Effect.gen(function* () {
      const legacy = legacyAlertRow(`pg${Date.now().toString(36)}`)
      yield* insertLegacyAlertRowSql(legacy)
      yield* assertLegacyAlertReadsBack(legacy)
    })
  )
})

layer(Layer.fresh(layerServerPostgresTest), { timeout: 60_000, excludeTestServices: true })(
  `delivery outbox upgrade on ${server}`,
  (it) => {
    it.effect("a delivery queued before the outbox kept traces is claimed after the upgrade, with none", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const { "0001_webhook_deliveries": first } = PostgresDeliveryOutbox.migrations
        yield* runMigrations("webhook_deliveries", { "0001_webhook_deliveries": first })
        const webhookId = "6f1c1c1e-8d1a-4a5e-9a43-1f0c2b7a9e10"
        yield* sql`INSERT INTO webhook_deliveries
            (delivery_id, webhook_id, user_id, notification_id, alert_id, body, due_at, attempts, next_attempt_at, state)
          VALUES ('before-traces', ${webhookId}::uuid, 'upgrade-user', 'n1', 'a1', '{}',
            to_timestamp(1000), 0, to_timestamp(1000), 'PENDING')`
        const outbox = yield* PostgresDeliveryOutbox.make
        const claimed = yield* outbox.claim(2_000_000, { limit: 10, perWebhook: 10, lease: 60_000 })
        assert.deepStrictEqual(
          claimed.map((d) => [d.delivery_id, d.traceparent, d.due_at]),
          [["before-traces", null, 1_000_000]]
        )
      })
    )
  }
)

readingStoreContract(`SQL on ${server}`, both)
alertStoreContract(`PostgreSQL table on ${server}`, both)
alertStateStoreContract(`PostgreSQL table on ${server}`, both)
archiveLedgerContract(`SQL on ${server}`, both)
sensorOwnershipContract(`SQL on ${server}`, both)
alertSettingsStoreContract(`PostgreSQL table on ${server}`, both)
webhookStoreContract(`PostgreSQL table on ${server}`, both)
deliveryOutboxContract(`PostgreSQL tables on ${server}`, both)
nightscoutCredentialStoreContract(`PostgreSQL tables on ${server}`, both)
nightscoutDeviceStatusStoreContract(`PostgreSQL table on ${server}`, both)
