import { freePort } from "@dexmon/ports"
import { Effect } from "effect"
import { tempDir } from "../TempDir.ts"
import { makeServiceProcess } from "./ServiceProcess.ts"

/**
 * DexMon started the way a user starts it (`pnpm start` runs
 * `services/standalone/src/main.ts`), on its own data directory and ports and
 * on embedded stores only, so a test can kill it and start it again on the
 * same data.
 */
export const makeDexMonProcessWith = Effect.fnUntraced(function* (settings: Record<string, string>) {
  const dataDir = yield* tempDir("e2e")
  // Not the servers the test runner started: this process runs on its embedded defaults.
  const {
    KAFKA_BROKERS: _kafka,
    DATABASE_URL: _database,
    CASSANDRA_CONTACT_POINTS: _cassandra,
    S3_BUCKET: _s3,
    ...env
  } = process.env
  const pgPort = yield* freePort
  const service = yield* makeServiceProcess("standalone", {
    ...env,
    ...settings,
    DEXMON_DATA_DIR: dataDir,
    DEXMON_EMBEDDED_PG_PORT: String(pgPort)
  })
  return { ...service, dataDir, pgPort }
})

/** The development flow: `SECURITY_DISABLED=true`, the caller named by `X-User-Id`. */
export const makeDexMonProcess = makeDexMonProcessWith({ SECURITY_DISABLED: "true" })

export type DexMonProcess = Effect.Success<typeof makeDexMonProcess>
