import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Layer } from "effect"
import { layerEmbedded } from "../postgres/Database.ts"
import { freePort } from "../postgres/FreePort.ts"

/**
 * A throw-away embedded PostgreSQL for tests: a fresh data directory and a free
 * port, removed when the layer is released. It is the same server and the same
 * layer that `pnpm start` uses, only elsewhere on disk.
 */
export const layerEmbeddedPostgresTest = Layer.unwrap(
  Effect.gen(function* () {
    const base = yield* Effect.acquireRelease(
      Effect.sync(() => mkdtempSync(join(tmpdir(), "dexmon-pg-"))),
      (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
    )
    const port = yield* freePort
    return layerEmbedded({ dataDir: join(base, "data"), port })
  })
).pipe(Layer.orDie)
