import { Metrics } from "../../../packages/observability/src/index.ts"

/**
 * The names of every series a DexMon service exports, from the registry the
 * services serve at `/metrics` (prom-client's defaults included): a histogram
 * as its `_bucket`, `_sum` and `_count` series, a summary as itself, `_sum`
 * and `_count`. Plus `up`, which Prometheus records for every scrape target.
 */
export const exportedSeriesNames = async (): Promise<ReadonlySet<string>> => {
  const names = new Set<string>(["up"])
  for (const metric of await Metrics.registry.getMetricsAsJSON()) {
    const type = String(metric.type)
    if (type === "histogram") for (const suffix of ["_bucket", "_sum", "_count"]) names.add(metric.name + suffix)
    else if (type === "summary") for (const suffix of ["", "_sum", "_count"]) names.add(metric.name + suffix)
    else names.add(metric.name)
  }
  return names
}
