import { type Duration, Effect, Schedule } from "effect"

/**
 * Polls `query` until its answer satisfies `done`: the tests wait on the data
 * itself, never on a fixed delay. Fails with the last answer once `times`
 * polls (default 600, every 100 ms) have not reached it.
 */
export const eventually = <A, E, R>(
  query: Effect.Effect<A, E, R>,
  done: (a: A) => boolean,
  options: { readonly every?: Duration.Input; readonly times?: number } = {}
) =>
  query.pipe(
    Effect.repeat({
      schedule: Schedule.spaced(options.every ?? "100 millis"),
      until: done,
      times: options.times ?? 600
    }),
    Effect.filterOrFail(done, (a) => new Error(`condition not reached; last answer: ${JSON.stringify(a)}`))
  )
