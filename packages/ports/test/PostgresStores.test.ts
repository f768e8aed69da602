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
import { layerEmbeddedPostgresTest } from "../src/testing/index.ts"
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

// One embedded server for every suite of this file.
const postgres = Layer.fresh(layerEmbeddedPostgresTest)
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
).pipe(Layer.provideMerge(postgres))

readingStoreContract("SQL on embedded PostgreSQL", both)
alertStoreContract("embedded (PostgreSQL table)", both)
alertStateStoreContract("embedded (PostgreSQL table)", both)
archiveLedgerContract("SQL on embedded PostgreSQL", both)
sensorOwnershipContract("SQL on embedded PostgreSQL", both)
alertSettingsStoreContract("PostgreSQL table on embedded PostgreSQL", both)
webhookStoreContract("PostgreSQL table on embedded PostgreSQL", both)
deliveryOutboxContract("PostgreSQL tables on embedded PostgreSQL", both)
nightscoutCredentialStoreContract("PostgreSQL tables on embedded PostgreSQL", both)
nightscoutDeviceStatusStoreContract("PostgreSQL table on embedded PostgreSQL", both)

layer(both, { timeout: 60_000, excludeTestServices: true })(
  "alerts written before episodes, on embedded PostgreSQL",
  (it) => {
    it.effect("a row of the seed's shape (status SENT, no episode columns) reads back as a resolved episode", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const legacy = legacyAlertRow(`pg${Date.now().toString(36)}`)
        yield* insertLegacyAlertRowSql(legacy)
        yield* assertLegacyAlertReadsBack(legacy)
        const open = yield* sql<{ count: number }>`
        SELECT count(*)::int AS count FROM glucose_alerts WHERE alert_id = ${legacy.alert_id}::uuid AND ended_at IS NULL`
        assert.strictEqual(open[0]!.count, 1, "the episode that replaced it is stored open")
      })
    )
  }
)
