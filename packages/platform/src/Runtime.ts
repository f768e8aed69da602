import { Metrics, TracingLive } from "@dexmon/observability"
import { NodeRuntime } from "@effect/platform-node"
import { Config, Context, Effect, Layer, Logger, Option, Tracer } from "effect"

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
 * Runs a service until SIGINT or SIGTERM, then closes its layers in reverse
 * order: consumers stop, in-flight batches finish or are handed back
 * uncommitted, servers close, embedded stores shut down cleanly.
 */
export const runService = (name: string, app: Layer.Layer<never, unknown, never>) => {
  hideKafkajsTimeoutWarning()
  Metrics.labelService(name)
  return Layer.launch(app.pipe(Layer.provide(TracingLive(name)))).pipe(
    Effect.annotateLogs({ service: name }),
    Effect.provide(LoggerLive),
    NodeRuntime.runMain
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
