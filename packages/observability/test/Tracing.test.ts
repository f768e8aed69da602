import { assert, describe, it } from "@effect/vitest"
import { type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { ConfigProvider, Duration, Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import {
  currentTraceparent,
  layerSpanProcessor,
  parentFromHeaders,
  startingOnWholeMicroseconds,
  type TracesExport,
  traceparentOf,
  tracesExport
} from "../src/Tracing.ts"

/** What `TracingLive("receiver")` would export to, with only these variables set. */
const exportWith = (env: Record<string, string>) =>
  tracesExport("receiver").pipe(Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env }))))

describe("the traces exporter chosen by OTEL_TRACES_EXPORTER", () => {
  const cases: ReadonlyArray<readonly [string, Record<string, string>, TracesExport]> = [
    ["no exporter and no endpoint: nothing exported", {}, { _tag: "None" }],
    [
      "no exporter and an OTLP endpoint: OTLP, production's default",
      { OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" },
      { _tag: "Otlp", serviceName: "dexmon-receiver" }
    ],
    [
      "otlp with a traces endpoint, named by OTEL_SERVICE_NAME",
      {
        OTEL_TRACES_EXPORTER: "otlp",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://collector:4318/v1/traces",
        OTEL_SERVICE_NAME: "receiver-eu"
      },
      { _tag: "Otlp", serviceName: "receiver-eu" }
    ],
    [
      "zipkin, at Zipkin's default address",
      { OTEL_TRACES_EXPORTER: "zipkin" },
      { _tag: "Zipkin", serviceName: "dexmon-receiver", endpoint: "http://localhost:9411/api/v2/spans" }
    ],
    [
      "zipkin at OTEL_EXPORTER_ZIPKIN_ENDPOINT",
      { OTEL_TRACES_EXPORTER: "zipkin", OTEL_EXPORTER_ZIPKIN_ENDPOINT: "http://127.0.0.1:19411/api/v2/spans" },
      { _tag: "Zipkin", serviceName: "dexmon-receiver", endpoint: "http://127.0.0.1:19411/api/v2/spans" }
    ],
    [
      "none, even with an endpoint",
      { OTEL_TRACES_EXPORTER: "none", OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" },
      { _tag: "None" }
    ],
    [
      "OTEL_SDK_DISABLED=true, whatever the exporter",
      { OTEL_SDK_DISABLED: "true", OTEL_TRACES_EXPORTER: "zipkin" },
      { _tag: "None" }
    ]
  ]
  it.effect.each(cases)("%s", ([, env, expected]) =>
    Effect.gen(function* () {
      assert.deepStrictEqual(yield* exportWith(env), expected)
    })
  )

  it.effect.each([
    ["an exporter DexMon has not got", { OTEL_TRACES_EXPORTER: "jaeger" }, "OTEL_TRACES_EXPORTER"],
    [
      "a Zipkin endpoint without its scheme",
      { OTEL_TRACES_EXPORTER: "zipkin", OTEL_EXPORTER_ZIPKIN_ENDPOINT: "127.0.0.1:9411/api/v2/spans" },
      "OTEL_EXPORTER_ZIPKIN_ENDPOINT"
    ]
  ] as const)("%s fails start-up with a ConfigError naming the variable", ([, env, variable]) =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(exportWith(env))
      assert.strictEqual(error._tag, "ConfigError")
      assert.include(String(error), variable)
    })
  )
})

describe("spans for Zipkin", () => {
  it.effect(
    "start on a whole microsecond (Zipkin refuses a batch with a fractional start), the spans otherwise unchanged",
    () =>
      Effect.gen(function* () {
        const exported: Array<ReadableSpan> = []
        const processor = new SimpleSpanProcessor(
          startingOnWholeMicroseconds({
            export: (spans, done) => {
              exported.push(...spans)
              done({ code: 0 })
            },
            shutdown: () => Promise.resolve()
          })
        )
        // Effect's clock counts nanoseconds: this span starts 1.234567 ms after the epoch.
        yield* TestClock.adjust(Duration.nanos(1_234_567n))
        yield* Effect.gen(function* () {
          yield* Effect.void.pipe(Effect.withSpan("Zipkin.check", { attributes: { answer: 42 } }))
        }).pipe(Effect.provide(Layer.fresh(layerSpanProcessor("dexmon-test", processor))), Effect.scoped)
        const [span] = exported
        assert.strictEqual(span?.name, "Zipkin.check")
        assert.deepStrictEqual(span!.startTime, [0, 1_234_000])
        assert.strictEqual(span!.attributes.answer, 42)
        assert.match(span!.spanContext().traceId, /^[0-9a-f]{32}$/)
      })
  )
})

describe("a span's context kept as a traceparent", () => {
  it.effect("reads back as the span it names, from a W3C or a B3 producer (its 64-bit trace id padded)", () =>
    Effect.gen(function* () {
      const span = yield* Effect.makeSpan("queued")
      const kept = traceparentOf(span)
      assert.match(kept, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
      const back = parentFromHeaders({ traceparent: kept })
      assert.deepStrictEqual([back?.traceId, back?.spanId, back?.sampled], [span.traceId, span.spanId, true])
      const b3 = parentFromHeaders({ b3: "463ac35c9f6413ad-a2fb4a1d1a96d312-0" })!
      assert.strictEqual(traceparentOf(b3), "00-0000000000000000463ac35c9f6413ad-a2fb4a1d1a96d312-00")
      assert.strictEqual(yield* currentTraceparent, undefined, "none outside a span")
      assert.strictEqual(yield* currentTraceparent.pipe(Effect.withParentSpan(span)), kept)
    })
  )
})
