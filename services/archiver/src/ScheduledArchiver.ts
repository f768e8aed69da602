import { Archiver } from "@dexmon/archive"
import { parseRetention } from "@dexmon/domain"
import { Config, Effect, Layer, Schedule } from "effect"

/** `DEXMON_ARCHIVE_EVERY`: how often `pnpm start` archives (`1h` by default, `off` to never). */
const archiveEvery = Effect.gen(function* () {
  const text = yield* Config.String("DEXMON_ARCHIVE_EVERY").pipe(Config.withDefault("1h"))
  if (text === "off") return undefined
  const millis = parseRetention(text)
  if (millis === undefined) {
    return yield* Effect.die(new Error(`DEXMON_ARCHIVE_EVERY must look like 1h, 30m or off, got "${text}"`))
  }
  return millis
})

/**
 * The archiver inside a long-running process: a pass at start and then every
 * `DEXMON_ARCHIVE_EVERY`. A failed pass is logged and the next one retries;
 * the ledger makes passes safe to repeat and to interrupt at shutdown.
 */
export const ScheduledArchiverLive = Layer.effectDiscard(
  Effect.gen(function* () {
    const every = yield* archiveEvery
    if (every === undefined) return yield* Effect.logInfo("scheduled archiving is off (DEXMON_ARCHIVE_EVERY=off)")
    const archiver = yield* Archiver
    const pass = archiver.runOnce.pipe(
      Effect.catchTag("ArchiverBusy", () => Effect.logInfo("another archiver run holds the lock; skipping this pass")),
      Effect.catchCause((cause) => Effect.logError("archive pass failed; the next pass retries", cause))
    )
    yield* Effect.forkScoped(pass.pipe(Effect.repeat(Schedule.spaced(every))))
  })
)
