import { describe, expect, it } from "vitest"
import { expressionsIn, namesIn } from "./support/PromQL.ts"

/** The reader the metric-name checks rely on, on the shapes the dashboards and rules use and a few harder ones. */
describe("namesIn", () => {
  it("finds the metric under functions, aggregations, matchers and Grafana's range variables", () => {
    expect(
      namesIn(
        'histogram_quantile(0.99, sum by (le, route) (rate(http_request_duration_seconds_bucket{route=~"/api/v1/glucose/.*"}[$__rate_interval])))'
      )
    ).toEqual({
      metrics: ["http_request_duration_seconds_bucket"],
      functions: ["histogram_quantile", "rate", "sum"]
    })
  })

  it("ignores label names in by/without/on/ignoring/group_left lists, before or after the aggregation", () => {
    const names = namesIn(
      "sum(rate(a_total[5m])) by (topic, group) / on (topic) group_left (service) sum without (instance) (b_total)"
    )
    expect(names.metrics).toEqual(["a_total", "b_total"])
  })

  it("ignores strings, including label_replace arguments and braces or identifiers inside them", () => {
    const names = namesIn('label_replace(up{job="dexmon", x="}{ not_a_metric"}, "dst", "$1", "instance", "(.*):.*")')
    expect(names).toEqual({ metrics: ["up"], functions: ["label_replace"] })
  })

  it("ignores numbers, durations, offsets, keywords and comments", () => {
    const names = namesIn(`
      sum by (topic) (increase(dlq_total[10m])) > 0   # growth
      or
      sum by (topic) (dlq_total unless dlq_total offset 1h30m) > bool 1e-3 and Inf > NaN
    `)
    expect(names.metrics).toEqual(["dlq_total"])
    expect(names.functions).toEqual(["increase", "sum"])
  })

  it("reads subqueries, the @ modifier and metric names with colons", () => {
    const names = namesIn("max_over_time(job:lag:sum[1h:5m] @ end()) - rate(c_total[5m] offset -5m)")
    expect(names.metrics).toEqual(["c_total", "job:lag:sum"])
    expect(names.functions).toEqual(["end", "max_over_time", "rate"])
  })

  it("reads a metric selected by an exact __name__ matcher and refuses a regex one", () => {
    expect(namesIn('rate({__name__="x_total", job="a"}[5m])').metrics).toEqual(["x_total"])
    expect(() => namesIn('{__name__=~"x_.*"}')).toThrow(/__name__=~/)
  })

  it("reports a misspelt function as a function, not as a metric", () => {
    expect(namesIn("rat(x_total[5m])")).toEqual({ metrics: ["x_total"], functions: ["rat"] })
  })
})

describe("expressionsIn", () => {
  it("collects every expr, however deeply nested", () => {
    const value = {
      panels: [{ targets: [{ expr: "a" }, { expr: "b" }] }, { type: "row", panels: [{ targets: [{ expr: "c" }] }] }],
      groups: [{ rules: [{ alert: "X", expr: "d" }] }],
      other: { expr: 3 }
    }
    expect(expressionsIn(value)).toEqual(["a", "b", "c", "d"])
  })
})
