import { Layer } from "effect"
import { PostgresAlertStore, SqlArchiveLedger, SqlReadingStore, SqlSensorOwnership } from "../src/index.ts"
import { layerEmbeddedPostgresTest } from "../src/testing/index.ts"
import { alertStoreContract } from "./contracts/AlertStoreContract.ts"
import { archiveLedgerContract } from "./contracts/ArchiveLedgerContract.ts"
import { readingStoreContract } from "./contracts/ReadingStoreContract.ts"
import { sensorOwnershipContract } from "./contracts/SensorOwnershipContract.ts"

// One embedded server for every suite of this file.
const postgres = Layer.fresh(layerEmbeddedPostgresTest)
const both = Layer.mergeAll(
  SqlArchiveLedger.layer.pipe(Layer.provideMerge(SqlReadingStore.layer)),
  PostgresAlertStore.layer,
  SqlSensorOwnership.layer
).pipe(Layer.provide(postgres))

readingStoreContract("SQL on embedded PostgreSQL", both)
alertStoreContract("embedded (PostgreSQL table)", both)
archiveLedgerContract("SQL on embedded PostgreSQL", both)
sensorOwnershipContract("SQL on embedded PostgreSQL", both)
