import { Clock, Effect } from "effect"

/** A clock whose wall time is `wallTime()`; its sleeps and monotonic time stay the real ones. */
const clockAt = (wallTime: () => number): Clock.Clock => {
  const real = Clock.Clock.defaultValue()
  return {
    sleep: (duration) => real.sleep(duration),
    currentTimeMillisUnsafe: wallTime,
    currentTimeMillis: Effect.sync(wallTime),
    currentTimeNanosUnsafe: () => BigInt(wallTime()) * 1_000_000n,
    currentTimeNanos: Effect.sync(() => BigInt(wallTime()) * 1_000_000n),
    monotonicTimeNanosUnsafe: () => real.monotonicTimeNanosUnsafe(),
    monotonicTimeNanos: real.monotonicTimeNanos
  }
}

/** The clock of a machine whose time is `skewMillis` off: what a receiver on it stamps events with. */
export const skewedClock = (skewMillis: number): Clock.Clock => {
  const real = Clock.Clock.defaultValue()
  return clockAt(() => real.currentTimeMillisUnsafe() + skewMillis)
}

/**
 * A wall clock stopped at `millis`: a second run of a job that reads the time sees the instant the first run saw,
 * so what it decides cannot differ because a boundary passed between the runs.
 */
export const stoppedClock = (millis: number): Clock.Clock => clockAt(() => millis)
