import { Layer } from "effect"
import { PostgresAlertStore, SqlReadingStore } from "../src/index.ts"
import { layerEmbeddedPostgresTest } from "../src/testing/index.ts"
import { alertStoreContract } from "./contracts/AlertStoreContract.ts"
import { readingStoreContract } from "./contracts/ReadingStoreContract.ts"

// One embedded server for both suites of this file.
const postgres = Layer.fresh(layerEmbeddedPostgresTest)
const both = Layer.mergeAll(SqlReadingStore.layer, PostgresAlertStore.layer).pipe(Layer.provide(postgres))

readingStoreContract("SQL on embedded PostgreSQL", both)
alertStoreContract("embedded (PostgreSQL table)", both)
