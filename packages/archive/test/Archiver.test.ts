import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { LocalFolderArchiveStore, PostgresArchiveLedger, SqlReadingStore } from "@dexmon/ports"
import { layerEmbeddedPostgresTest } from "@dexmon/ports/testing"
import { describe } from "@effect/vitest"
import { Layer } from "effect"
import { archiverSuite } from "./ArchiverSuite.ts"

// The embedded default: the embedded PostgreSQL 18 and a local folder, a fresh server and folder per test.
describe("Archiver on the embedded stores", () => {
  archiverSuite("embedded PostgreSQL and a local folder", () =>
    Layer.mergeAll(
      PostgresArchiveLedger.layer.pipe(Layer.provideMerge(SqlReadingStore.layer)),
      LocalFolderArchiveStore.layer(mkdtempSync(join(tmpdir(), "dexmon-archive-")))
    ).pipe(Layer.provideMerge(Layer.fresh(layerEmbeddedPostgresTest)))
  )
})
