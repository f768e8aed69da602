import { Deferred, Effect, Queue } from "effect"

/** Most keys one gathered lookup asks for: a statement's array parameter stays small. */
export const MAX_KEYS_PER_LOOKUP = 10_000

interface Waiting<K, V, E> {
  readonly keys: ReadonlyArray<K>
  readonly done: Deferred.Deferred<ReadonlyMap<K, V>, E>
}

/**
 * Runs the lookups of concurrent callers as one: the keys of everyone waiting go into one `lookup` (one
 * statement), and each caller gets the answer (a map holding at least its own keys). One lookup is in
 * flight at a time; callers that arrive meanwhile wait for the next one, so a busy server answers many
 * requests per round trip and an idle one answers the first caller at once, without a delay to wait out.
 *
 * A caller is never attached to a lookup already sent: its answer is read after it asked, so it sees every
 * write that was answered before it asked (a release, a settings change by another process), exactly as a
 * statement of its own would. A failed lookup fails every caller of that round.
 */
export const makeBatchedLookup = Effect.fnUntraced(function* <K, V, E>(
  lookup: (keys: ReadonlyArray<K>) => Effect.Effect<ReadonlyMap<K, V>, E>,
  maxKeys: number = MAX_KEYS_PER_LOOKUP
) {
  const waiting: Array<Waiting<K, V, E>> = []
  let inFlight: ReadonlyArray<Waiting<K, V, E>> = []
  const wake = yield* Queue.unbounded<void>()

  /** The next round's callers: in arrival order, while their keys fit (always at least one). */
  const takeRound = () => {
    const keys = new Set<K>()
    let taken = 0
    while (taken < waiting.length) {
      const next = waiting[taken]!.keys
      if (taken > 0 && keys.size + next.length > maxKeys) break
      for (const key of next) keys.add(key)
      taken++
    }
    return { callers: waiting.splice(0, taken), keys: [...keys] }
  }

  const runRounds = Effect.gen(function* () {
    yield* Queue.take(wake)
    yield* Queue.clear(wake)
    while (waiting.length > 0) {
      const round = takeRound()
      inFlight = round.callers
      const exit = yield* Effect.exit(lookup(round.keys))
      inFlight = []
      for (const caller of round.callers) Deferred.doneUnsafe(caller.done, exit)
    }
  }).pipe(
    Effect.forever,
    // The store is closing: whoever still waits is interrupted rather than left waiting for good.
    Effect.onInterrupt(() =>
      Effect.sync(() => {
        for (const caller of [...inFlight, ...waiting.splice(0)]) Deferred.doneUnsafe(caller.done, Effect.interrupt)
      })
    )
  )
  yield* Effect.forkScoped(runRounds)

  return (keys: ReadonlyArray<K>): Effect.Effect<ReadonlyMap<K, V>, E> =>
    keys.length === 0
      ? Effect.succeed(new Map())
      : Effect.suspend(() => {
          const done = Deferred.makeUnsafe<ReadonlyMap<K, V>, E>()
          waiting.push({ keys, done })
          Queue.offerUnsafe(wake, undefined)
          return Deferred.await(done)
        })
})
