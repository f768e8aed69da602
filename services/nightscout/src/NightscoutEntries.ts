import {
  type Forbidden,
  MAX_BATCH_SIZE,
  type ReadingInput,
  type ServiceUnavailable,
  ValidationError
} from "@dexmon/api"
import { HotRetention, type Source, type UserId } from "@dexmon/domain"
import { Metrics } from "@dexmon/observability"
import { Ingestion, MAX_FUTURE_SKEW_MS } from "@dexmon/receiver"
import { Clock, Context, Effect, Layer } from "effect"
import { type EntryOutcome, echoOf, translateEntries } from "./Entries.ts"

type Reading = Extract<EntryOutcome, { readonly _tag: "Reading" }>

/** Consecutive pieces of at most `size` items. */
const chunksOf = <A>(items: ReadonlyArray<A>, size: number): ReadonlyArray<ReadonlyArray<A>> => {
  const chunks: Array<ReadonlyArray<A>> = []
  for (let start = 0; start < items.length; start += size) chunks.push(items.slice(start, start + size))
  return chunks
}

/**
 * Nightscout entries into DexMon's pipeline. A body is translated whole (`translateEntries`) before anything is
 * appended, so a malformed body changes nothing. The readings then go through the
 * receiver's `Ingestion` (ownership, alert-settings version, event log) in batches of at most 1,000 of one
 * source: a post of any length is taken. When a later batch fails after an earlier one was appended, the answer
 * is the failure and posting the same entries again is safe: a reading is stored once per (sensor, time).
 */
export class NightscoutEntries extends Context.Service<
  NightscoutEntries,
  {
    readonly post: (
      userId: UserId,
      body: unknown
    ) => Effect.Effect<ReadonlyArray<Record<string, unknown>>, ValidationError | Forbidden | ServiceUnavailable>
  }
>()("dexmon/nightscout/NightscoutEntries") {
  static readonly layer = Layer.effect(
    NightscoutEntries,
    Effect.gen(function* () {
      const ingestion = yield* Ingestion
      const retention = yield* HotRetention

      const post = Effect.fn("NightscoutEntries.post")(function* (userId: UserId, body: unknown) {
        const translated = translateEntries(userId, body)
        if (translated._tag === "Invalid") return yield* ValidationError.fromIssues("payload", translated.issues)
        const { posted } = translated.entries
        // Times DexMon does not take are answered, not refused, for the same reason as odd values (see
        // `translateEntries`); `now` is also the instant Ingestion checks against, so none fails there.
        const now = yield* Clock.currentTimeMillis
        const outcomes = translated.entries.outcomes.map((outcome): EntryOutcome => {
          if (outcome._tag !== "Reading") return outcome
          const at = outcome.reading.timestamp
          if (at > now + MAX_FUTURE_SKEW_MS) {
            return { _tag: "Ignored", kind: "out_of_time", reason: "more than 5 minutes in the future", id: outcome.id }
          }
          if (at < now - retention.millis) {
            const days = Math.round(retention.millis / 86_400_000)
            return {
              _tag: "Ignored",
              kind: "out_of_time",
              reason: `older than the hot retention (${days} days)`,
              id: outcome.id
            }
          }
          return outcome
        })
        const readings = outcomes.filter((outcome): outcome is Reading => outcome._tag === "Reading")
        for (const source of ["SENSOR", "MANUAL"] as const satisfies ReadonlyArray<Source>) {
          // Oldest first across the batches too: uploaders post newest first, and the alert engine judges a
          // sensor's readings in log order (Ingestion sorts within a batch; the sort is stable).
          const ofSource = readings
            .filter((outcome) => outcome.source === source)
            .sort((a, b) => a.reading.timestamp - b.reading.timestamp)
          for (const chunk of chunksOf(ofSource, MAX_BATCH_SIZE)) {
            yield* ingestion.accept(
              userId,
              source,
              chunk.map((outcome): ReadingInput => outcome.reading),
              (index) => chunk[index]?.timePath ?? "",
              now
            )
          }
        }
        for (const outcome of outcomes) {
          if (outcome._tag === "Ignored") Metrics.nightscoutEntriesIgnored.inc({ kind: outcome.kind })
        }
        yield* Effect.annotateCurrentSpan({
          "dexmon.nightscout.entries": outcomes.length,
          "dexmon.nightscout.ignored": outcomes.length - readings.length
        })
        return outcomes.map((outcome, index) => echoOf(posted[index] ?? {}, outcome))
      })

      return NightscoutEntries.of({ post })
    })
  )
}
