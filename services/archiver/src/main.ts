import { Archiver } from "@dexmon/archive"
import { HotRetention } from "@dexmon/domain"
import { Metrics } from "@dexmon/observability"
import { ArchiveLedgerLive, ArchiveStoreLive, runOnce } from "@dexmon/platform"
import { Config, Effect, Layer, Option } from "effect"

/**
 * `pnpm archive`: one archiving pass, then exit, as a Kubernetes CronJob runs
 * it. Exits 0 when the pass finished or another run already holds the lock,
 * and non-zero when it failed (a re-run resumes safely).
 */
const program = Effect.gen(function* () {
  const archiver = yield* Archiver
  yield* archiver.runOnce.pipe(
    Effect.asVoid,
    Effect.catchTag("ArchiverBusy", () => Effect.logWarning("another archiver run holds the lock; nothing to do"))
  )
  // A run that exits is never scraped: its metrics go to a Pushgateway when one is configured.
  const pushgateway = yield* Config.option(Config.String("DEXMON_PUSHGATEWAY_URL"))
  if (Option.isSome(pushgateway)) {
    yield* Metrics.pushTo(pushgateway.value, "dexmon-archiver").pipe(
      Effect.tapError((error) => Effect.logWarning(error.message)),
      Effect.ignore
    )
  }
})

runOnce(
  "archiver",
  program.pipe(
    Effect.provide(
      Archiver.layer.pipe(Layer.provide(Layer.mergeAll(ArchiveLedgerLive, ArchiveStoreLive, HotRetention.layerConfig)))
    )
  )
)
