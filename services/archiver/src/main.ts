import { Archiver } from "@dexmon/archive"
import { HotRetention } from "@dexmon/domain"
import { TracingLive } from "@dexmon/observability"
import { ArchiveLedgerLive, ArchiveStoreLive, LoggerLive } from "@dexmon/platform"
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"

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
})

program.pipe(
  Effect.provide(
    Archiver.layer.pipe(
      Layer.provide(Layer.mergeAll(ArchiveLedgerLive, ArchiveStoreLive, HotRetention.layerConfig)),
      Layer.provideMerge(TracingLive("archiver"))
    )
  ),
  Effect.annotateLogs({ service: "archiver" }),
  Effect.provide(LoggerLive),
  NodeRuntime.runMain
)
