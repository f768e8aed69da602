import type { SpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Config, Context, Effect, Layer, Option, type Tracer } from "effect"
import { HttpTraceContext } from "effect/http"

/**
 * OpenTelemetry tracing through `@effect/opentelemetry`, configured by the
 * standard variables: spans are exported over OTLP/HTTP when
 * `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is
 * set (the exporter reads its own `OTEL_EXPORTER_OTLP_*` settings), named by
 * `OTEL_SERVICE_NAME` (default `dexmon-<service>`); `OTEL_SDK_DISABLED=true`
 * or `OTEL_TRACES_EXPORTER=none` turns export off. Without export, spans still
 * carry trace ids into logs and Kafka headers. The OpenTelemetry SDK and the
 * exporter (some 70 MB of a process's memory) are loaded only when spans are exported.
 */
export const TracingLive = (service: string) =>
  Layer.unwrap(
    Effect.gen(function* () {
      const disabled = yield* Config.Boolean("OTEL_SDK_DISABLED").pipe(Config.withDefault(false))
      const exporter = yield* Config.String("OTEL_TRACES_EXPORTER").pipe(Config.withDefault("otlp"))
      const endpoint = yield* Config.option(Config.String("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
      const base = yield* Config.option(Config.String("OTEL_EXPORTER_OTLP_ENDPOINT"))
      const serviceName = yield* Config.String("OTEL_SERVICE_NAME").pipe(Config.withDefault(`dexmon-${service}`))
      if (disabled || exporter === "none" || (Option.isNone(endpoint) && Option.isNone(base))) {
        return Layer.empty
      }
      yield* Effect.logInfo(`exporting traces over OTLP as ${serviceName}`)
      const [{ BatchSpanProcessor }, { OTLPTraceExporter }] = yield* Effect.promise(() =>
        Promise.all([import("@opentelemetry/sdk-trace-base"), import("@opentelemetry/exporter-trace-otlp-http")])
      )
      return layerSpanProcessor(serviceName, new BatchSpanProcessor(new OTLPTraceExporter()))
    })
  )

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
