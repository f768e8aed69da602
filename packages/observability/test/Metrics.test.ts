import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Metrics, TracesExported } from "../src/index.ts"

const OPENMETRICS = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"

/** The lines of an exposition that mention `needle`. */
const linesWith = (text: string, needle: string) => text.split("\n").filter((line) => line.includes(needle))

describe("Metrics.exposition", () => {
  it.effect(
    "serves OpenMetrics with the trace id as exemplar to Prometheus, and the text format without to others",
    () =>
      Effect.gen(function* () {
        const route = `/exemplar-${Date.now().toString(36)}`
        const labels = { method: "GET", route, status: "200" }
        Metrics.httpRequests.inc(labels)
        yield* Effect.withSpan(Metrics.observe(Metrics.httpRequestDuration, labels, 0.3), "request").pipe(
          Effect.provideService(TracesExported, true)
        )

        const openMetrics = yield* Metrics.exposition(OPENMETRICS)
        assert.match(openMetrics.contentType, /^application\/openmetrics-text/)
        assert.isTrue(openMetrics.text.endsWith("# EOF\n"))
        const bucket = linesWith(openMetrics.text, `route="${route}"`).find((line) => line.includes('le="0.5"'))
        assert.match(
          bucket ?? "",
          /^http_request_duration_seconds_bucket\{.*\} 1 # \{trace_id="[0-9a-f]{32}"\} 0\.3 \d/
        )
        assert.include(openMetrics.text, "# TYPE http_requests counter")

        const text = yield* Metrics.exposition(undefined)
        assert.match(text.contentType, /^text\/plain; version=0\.0\.4/)
        assert.notInclude(text.text, "# EOF")
        assert.notInclude(text.text, "trace_id")
        // The counter's family keeps its `_total` in the text format, even after an OpenMetrics exposition (which
        // renames prom-client's counters in place).
        assert.include(text.text, "# TYPE http_requests_total counter")
        assert.deepStrictEqual(
          linesWith(text.text, `route="${route}"`).filter((line) => line.startsWith("http_requests_total")),
          [`http_requests_total{method="GET",route="${route}",status="200"} 1`]
        )
        const textBucket = linesWith(text.text, `route="${route}"`).find((line) => line.includes('le="0.5"'))
        assert.strictEqual(
          textBucket,
          `http_request_duration_seconds_bucket{le="0.5",method="GET",route="${route}",status="200"} 1`
        )
      })
  )

  it.effect("keeps no exemplar when spans are not exported: its trace id would lead nowhere", () =>
    Effect.gen(function* () {
      const route = `/untraced-${Date.now().toString(36)}`
      const labels = { method: "GET", route, status: "200" }
      yield* Effect.withSpan(Metrics.observe(Metrics.httpRequestDuration, labels, 0.3), "request")
      const openMetrics = yield* Metrics.exposition(OPENMETRICS)
      const lines = linesWith(openMetrics.text, `route="${route}"`)
      assert.isAbove(lines.length, 0)
      assert.isTrue(lines.every((line) => !line.includes("trace_id")))
    })
  )

  it("openMetricsToText keeps label values that hold ` # ` and braces, and drops only the exemplar", () => {
    const text = Metrics.openMetricsToText(
      [
        "# HELP odd_seconds Odd.",
        "# TYPE odd_seconds histogram",
        'odd_seconds_bucket{le="1",route="/a # {b}"} 2 # {trace_id="abc"} 0.5 1700000000',
        "# EOF",
        ""
      ].join("\n")
    )
    assert.strictEqual(
      text,
      [
        "# HELP odd_seconds Odd.",
        "# TYPE odd_seconds histogram",
        'odd_seconds_bucket{le="1",route="/a # {b}"} 2',
        ""
      ].join("\n")
    )
  })
})
