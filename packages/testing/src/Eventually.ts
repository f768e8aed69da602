import { Duration, Effect, Formatter, Result, Schema } from "effect"

/**
 * A poll ran out before what it awaited came true. It names what was awaited, how long it polled
 * and the last answer (or error) it saw, so a failing test says why without a rerun.
 */
export class EventuallyTimeout extends Schema.TaggedError<EventuallyTimeout>()("EventuallyTimeout", {
  awaited: Schema.String,
  polls: Schema.Number,
  every: Schema.String,
  last: Schema.String
}) {
  override get message() {
    return `never ${this.awaited} after ${this.polls} polls ${this.every} apart; last seen: ${this.last}`
  }
}

export interface EventuallyOptions<E> {
  /** What the poll waits for, as the failure should say it ("4 readings stored"); default: the predicate's source. */
  readonly what?: string
  /** Between polls; default 100 millis. */
  readonly every?: Duration.Input
  /** How many polls after the first; default 600 (a minute at the default spacing). */
  readonly times?: number
  /**
   * Which failures of `query` mean "not yet" (a server still starting, a table not created yet)
   * rather than a broken test: those are polled again, and the last one is reported if time runs
   * out. Any other failure fails at once. Default: none.
   */
  readonly retry?: (error: E) => boolean
}

/** The last answer, short enough for an error message and safe for any value (cycles, bigints, errors). */
const describe = (result: Result.Result<unknown, unknown> | undefined): string => {
  if (result === undefined) return "nothing"
  const text = Result.isSuccess(result)
    ? Formatter.format(result.success)
    : `failure ${Formatter.formatJson(result.failure)}`
  return text.length > 2_000 ? `${text.slice(0, 2_000)}... (${text.length} characters)` : text
}

/**
 * Polls `query` until its answer satisfies `done`: tests wait on the data itself, never on a fixed
 * delay. Fails with `EventuallyTimeout` (what was awaited, the last answer) once `times` more polls,
 * `every` apart, have not reached it: a poll that runs out never passes silently, unlike
 * `Effect.repeat({ until, times })`, which returns its last value. Sleeps on the `Clock`: under
 * `it.effect`'s TestClock, use `it.live` or a layer with `excludeTestServices`.
 */
export const eventually = Effect.fnUntraced(function* <A, E, R>(
  query: Effect.Effect<A, E, R>,
  done: (a: A) => boolean,
  options: EventuallyOptions<E> = {}
): Effect.fn.Return<A, E | EventuallyTimeout, R> {
  const every = Duration.fromInputUnsafe(options.every ?? "100 millis")
  const times = options.times ?? 600
  let last: Result.Result<A, E> | undefined
  for (let poll = 0; poll <= times; poll++) {
    if (poll > 0) yield* Effect.sleep(every)
    last = yield* Effect.result(query)
    if (Result.isSuccess(last)) {
      if (done(last.success)) return last.success
    } else if (options.retry === undefined || !options.retry(last.failure)) {
      return yield* Effect.fail(last.failure)
    }
  }
  return yield* new EventuallyTimeout({
    awaited: options.what ?? `reached: ${done.toString()}`,
    polls: times + 1,
    every: Duration.format(every),
    last: describe(last)
  })
})
