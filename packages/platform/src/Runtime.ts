import { Metrics, RedactionLive, redactText, TracingLive } from "@dexmon/observability"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Config, Context, Effect, Layer, Logger, Option, Tracer } from "effect"
import { boundShutdown, dropForeignSignalHandlers, teardown } from "./Shutdown.ts"

/**
 * One JSON object per line, with the trace and span of the fiber that logged
 * (`trace_id`, `span_id`), so a log line leads to its trace and back.
 * Whatever looks like a secret in the line (a password in a connection
 * string, a token in a URL or an error message) is blanked before it is written.
 */
export const jsonLoggerWithTrace = Logger.make((options) => {
  const entry = Logger.formatStructured.log(options)
  const span = Context.getOption(options.fiber.context, Tracer.ParentSpan)
  const trace = Option.isSome(span) ? { trace_id: span.value.traceId, span_id: span.value.spanId } : {}
  globalThis.console.log(redactText(JSON.stringify({ ...entry, ...trace })))
})

/** Log lines as JSON (`DEXMON_LOG_FORMAT=json`, for log shippers) or for people (`pretty`, the default). */
export const LoggerLive = Layer.unwrap(
  Effect.map(Config.Literals(["pretty", "json"], "DEXMON_LOG_FORMAT").pipe(Config.withDefault("pretty")), (format) =>
    Logger.layer([format === "json" ? jsonLoggerWithTrace : Logger.consolePretty()])
  )
)

/**
 * Runs a service until SIGINT or SIGTERM, then closes its layers in reverse
 * order: the HTTP server stops accepting, consumers stop and hand back their
 * uncommitted batches, producers flush, pools and embedded stores close. Exits
 * 0 within `DEXMON_SHUTDOWN_TIMEOUT`.
 */
export const runService = (name: string, app: Layer.Layer<never, unknown, never>) =>
  runProgram(
    name,
    boundShutdown.pipe(
      Effect.andThen(Layer.launch(app)),
      Effect.onInterrupt(() => Effect.logInfo("stopping: closing servers, consumers and stores"))
    )
  )

/**
 * Runs a program that ends by itself (`pnpm archive`, as a CronJob runs it)
 * with the same logging, tracing, metrics label and exit codes as a service: 0
 * when it finished or was stopped by a signal, 1 when it failed.
 */
export const runOnce = (name: string, program: Effect.Effect<void, unknown, never>) => runProgram(name, program)

const runProgram = (name: string, program: Effect.Effect<void, unknown, never>) => {
  hideKafkajsTimeoutWarning()
  dropForeignSignalHandlers()
  Metrics.labelService(name)
  return program.pipe(
    Effect.provide(TracingLive(name)),
    // Effect's HTTP clients and servers in this process record secret query values and headers redacted.
    Effect.provide(RedactionLive),
    Effect.annotateLogs({ service: name }),
    Effect.provide(LoggerLive),
    NodeRuntime.runMain({ teardown })
  )
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
