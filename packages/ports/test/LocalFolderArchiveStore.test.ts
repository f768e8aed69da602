import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Layer } from "effect"
import { LocalFolderArchiveStore } from "../src/index.ts"
import { archiveStoreContract } from "./contracts/ArchiveStoreContract.ts"

archiveStoreContract(
  "local folder",
  Layer.unwrap(
    Effect.map(
      Effect.acquireRelease(
        Effect.sync(() => mkdtempSync(join(tmpdir(), "dexmon-archive-"))),
        (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
      ),
      LocalFolderArchiveStore.layer
    )
  )
)
