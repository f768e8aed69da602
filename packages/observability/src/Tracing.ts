import type { ReadableSpan, SpanExporter, SpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Config, Context, Effect, Layer, Option, type Tracer } from "effect"
import { HttpTraceContext } from "effect/http"

/** Where a process's spans go, from `OTEL_TRACES_EXPORTER` and the chosen exporter's settings. */
export type TracesExport =
  | { readonly _tag: "None" }
  | { readonly _tag: "Otlp"; readonly serviceName: string }
  | { readonly _tag: "Zipkin"; readonly serviceName: string; readonly endpoint: string }

/**
 * Reads the standard variables: `OTEL_TRACES_EXPORTER` is `otlp` (the default), `zipkin` or `none`, and any
 * other value fails with a `ConfigError` rather than quietly exporting over OTLP. OTLP exports only when
 * `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (its exporter reads its own
 * `OTEL_EXPORTER_OTLP_*` settings); Zipkin always, to `OTEL_EXPORTER_ZIPKIN_ENDPOINT` (default
 * `http://localhost:9411/api/v2/spans`). `OTEL_SDK_DISABLED=true` turns export off whatever the exporter.
 * Spans are named by `OTEL_SERVICE_NAME` (default `dexmon-<service>`).
 */
export const tracesExport = Effect.fn("Tracing.tracesExport")(function* (service: string) {
  const disabled = yield* Config.Boolean("OTEL_SDK_DISABLED").pipe(Config.withDefault(false))
  const exporter = yield* Config.Literals(["otlp", "zipkin", "none"], "OTEL_TRACES_EXPORTER").pipe(
    Config.withDefault("otlp")
  )
  const serviceName = yield* Config.String("OTEL_SERVICE_NAME").pipe(Config.withDefault(`dexmon-${service}`))
  if (disabled || exporter === "none") return { _tag: "None" } satisfies TracesExport
  if (exporter === "zipkin") {
    const endpoint = yield* Config.URL("OTEL_EXPORTER_ZIPKIN_ENDPOINT").pipe(
      Config.withDefault(new URL("http://localhost:9411/api/v2/spans"))
    )
    return { _tag: "Zipkin", serviceName, endpoint: endpoint.href } satisfies TracesExport
  }
  const endpoint = yield* Config.option(Config.String("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
  const base = yield* Config.option(Config.String("OTEL_EXPORTER_OTLP_ENDPOINT"))
  if (Option.isNone(endpoint) && Option.isNone(base)) return { _tag: "None" } satisfies TracesExport
  return { _tag: "Otlp", serviceName } satisfies TracesExport
})

/**
 * OpenTelemetry tracing through `@effect/opentelemetry`, exported as `tracesExport` reads it: over OTLP/HTTP
 * in production, as Zipkin v2 JSON to a Zipkin server (the harness's: `pnpm infra up zipkin`), or not at all.
 * Without export, spans still carry trace ids into logs and Kafka headers. The OpenTelemetry SDK and the
 * exporter (some 70 MB of a process's memory) are loaded only when spans are exported.
 */
export const TracingLive = (service: string) =>
  Layer.unwrap(
    Effect.gen(function* () {
      const exported = yield* tracesExport(service)
      switch (exported._tag) {
        case "None":
          return Layer.empty
        case "Otlp": {
          yield* Effect.logInfo(`exporting traces over OTLP as ${exported.serviceName}`)
          const [{ BatchSpanProcessor }, { OTLPTraceExporter }] = yield* Effect.promise(() =>
            Promise.all([import("@opentelemetry/sdk-trace-base"), import("@opentelemetry/exporter-trace-otlp-http")])
          )
          return layerSpanProcessor(exported.serviceName, new BatchSpanProcessor(new OTLPTraceExporter()))
        }
        case "Zipkin": {
          yield* Effect.logInfo(`exporting traces to Zipkin at ${exported.endpoint} as ${exported.serviceName}`)
          const [{ BatchSpanProcessor }, { ZipkinExporter }] = yield* Effect.promise(() =>
            Promise.all([import("@opentelemetry/sdk-trace-base"), import("@opentelemetry/exporter-zipkin")])
          )
          const exporter = new ZipkinExporter({ url: exported.endpoint, serviceName: exported.serviceName })
          return layerSpanProcessor(exported.serviceName, new BatchSpanProcessor(startingOnWholeMicroseconds(exporter)))
        }
      }
    })
  )

/**
 * Zipkin's collector reads a span's start as a whole number of microseconds and refuses the whole batch when
 * one span's is not ("Expected a long but was 1796210284627570.8"). Effect starts spans at nanosecond
 * precision, and OpenTelemetry's Zipkin exporter rounds durations and annotations but not start times (in
 * 2.12 and 3.1 alike), so without this nearly every batch was dropped. Truncates each start first.
 */
export const startingOnWholeMicroseconds = (exporter: SpanExporter): SpanExporter => ({
  export: (spans, done) => exporter.export(spans.map(startOnWholeMicrosecond), done),
  shutdown: () => exporter.shutdown(),
  forceFlush: () => exporter.forceFlush?.() ?? Promise.resolve()
})

const startOnWholeMicrosecond = (span: ReadableSpan): ReadableSpan => {
  const [seconds, nanos] = span.startTime
  if (nanos % 1000 === 0) return span
  // The span itself as the prototype: its other fields and methods stay as they are.
  return Object.create(span, { startTime: { value: [seconds, nanos - (nanos % 1000)] } }) as ReadableSpan
}

/**
 * Whether spans leave the process. Spans made only to be exported (a consumer's span per record, which nothing
 * but the trace store reads) are skipped without it: at thousands of records a second they cost a notifier some
 * 9 MB of live heap and their garbage.
 */
export const TracesExported = Context.Reference<boolean>("dexmon/observability/TracesExported", {
  defaultValue: () => false
})

/** Tracing into a given span processor (tests use an in-memory one). */
export const layerSpanProcessor = (serviceName: string, processor: SpanProcessor) =>
  Layer.unwrap(
    Effect.promise(() => import("@effect/opentelemetry/NodeSdk")).pipe(
      Effect.map((NodeSdk) =>
        Layer.merge(
          NodeSdk.layer(() => ({ spanProcessor: processor, resource: { serviceName } })),
          Layer.succeed(TracesExported, true)
        )
      )
    )
  )

/** W3C trace context of the current span as message headers (`traceparent`), or none outside a span. */
export const currentTraceHeaders: Effect.Effect<Readonly<Record<string, string>>> = Effect.currentSpan.pipe(
  Effect.map((span) => ({ ...HttpTraceContext.toHeaders(span) })),
  Effect.orElseSucceed(() => ({}))
)

/** The producer's span named by a message's `traceparent` header, to continue its trace. */
export const parentFromHeaders = (headers: Readonly<Record<string, string>>): Tracer.ExternalSpan | undefined =>
  Option.getOrUndefined(HttpTraceContext.fromHeaders(headers as never))

/**
 * A span's context as a W3C `traceparent`: what a message or a stored row carries so that the work it leads to
 * later, in another process, continues the span's trace (`parentFromHeaders({ traceparent })` reads it back).
 */
export const traceparentOf = (span: Tracer.AnySpan): string =>
  `00-${span.traceId.padStart(32, "0")}-${span.spanId}-${span.sampled ? "01" : "00"}`

/** The current span's `traceparent` (`traceparentOf`), or undefined outside a span. */
export const currentTraceparent: Effect.Effect<string | undefined> = Effect.currentSpan.pipe(
  Effect.map(traceparentOf),
  Effect.orElseSucceed(() => undefined)
)
