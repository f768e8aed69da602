import { PostgresArchiveLedger, S3ArchiveStore, SqlReadingStore } from "@dexmon/ports"
import { layerServerPostgresTest, requiredServer } from "@dexmon/ports/testing"
import { describe } from "@effect/vitest"
import { ConfigProvider, Layer } from "effect"
import { archiverSuite } from "./ArchiverSuite.ts"

const database = requiredServer("DATABASE_URL").replace(/\/\/[^@]*@/, "//")
const s3 = requiredServer("S3_ENDPOINT")

// The production layers: PostgreSQL (15 here) in a fresh database per test, and S3 (S3Proxy from the harness).
describe(`Archiver on ${database} and S3 at ${s3}`, () => {
  archiverSuite("PostgreSQL and S3", () =>
    Layer.mergeAll(
      PostgresArchiveLedger.layer.pipe(Layer.provideMerge(SqlReadingStore.layer)),
      S3ArchiveStore.layer.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv())))
    ).pipe(Layer.provideMerge(Layer.fresh(layerServerPostgresTest)))
  )
})
