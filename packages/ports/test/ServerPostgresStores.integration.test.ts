import { Layer } from "effect"
import { PostgresAlertStore, SqlReadingStore } from "../src/index.ts"
import { layerServerPostgresTest, requiredServer } from "../src/testing/index.ts"
import { alertStoreContract } from "./contracts/AlertStoreContract.ts"
import { readingStoreContract } from "./contracts/ReadingStoreContract.ts"

// The same suites as on the embedded server, on the real PostgreSQL server (PostgreSQL 15 here).
const server = requiredServer("DATABASE_URL").replace(/\/\/[^@]*@/, "//")
const both = Layer.mergeAll(SqlReadingStore.layer, PostgresAlertStore.layer).pipe(
  Layer.provide(Layer.fresh(layerServerPostgresTest))
)

readingStoreContract(`SQL on ${server}`, both)
alertStoreContract(`PostgreSQL table on ${server}`, both)
