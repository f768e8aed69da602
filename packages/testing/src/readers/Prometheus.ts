import { rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { requiredServer } from "@dexmon/ports/testing"
import { Effect, Schema } from "effect"

/** Prometheus refused a query, or did not answer one. */
export class PrometheusQueryError extends Schema.TaggedError<PrometheusQueryError>()("PrometheusQueryError", {
  query: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `Prometheus query ${this.query}: ${this.reason}`
  }
}

/** One series of an instant query's answer: its labels and its value now. */
export interface PromSeries {
  readonly metric: Readonly<Record<string, string>>
  readonly value: number
}

interface QueryAnswer {
  readonly status: "success" | "error"
  readonly error?: string
  readonly data?: { readonly resultType: string; readonly result: ReadonlyArray<unknown> }
}

/**
 * An instant query on the harness's Prometheus (`PROMETHEUS_URL`, from `pnpm infra up observability`): the
 * series of a vector answer, or one unlabelled series for a scalar. Fails with what Prometheus said when it
 * refuses the expression.
 */
export const prometheusQuery = (query: string): Effect.Effect<ReadonlyArray<PromSeries>, PrometheusQueryError> =>
  Effect.tryPromise({
    try: async () => {
      const url = `${requiredServer("PROMETHEUS_URL")}/api/v1/query?query=${encodeURIComponent(query)}`
      return (await (await fetch(url)).json()) as QueryAnswer
    },
    catch: (cause) => new PrometheusQueryError({ query, reason: String(cause) })
  }).pipe(
    Effect.flatMap((answer) => {
      if (answer.status !== "success" || answer.data === undefined) {
        return Effect.fail(new PrometheusQueryError({ query, reason: answer.error ?? "no data" }))
      }
      const { resultType, result } = answer.data
      if (resultType === "scalar") {
        const [, value] = result as unknown as [number, string]
        return Effect.succeed([{ metric: {}, value: Number(value) }])
      }
      return Effect.succeed(
        (result as ReadonlyArray<{ metric: Record<string, string>; value: [number, string] }>).map((series) => ({
          metric: series.metric,
          value: Number(series.value[1])
        }))
      )
    })
  )

/**
 * The exemplars Prometheus stored for the series `selector` picks since `sinceMillis`: each one's labels
 * (`trace_id` for DexMon's). Needs `--enable-feature=exemplar-storage` (the harness's Prometheus has it).
 */
export const prometheusExemplars = (
  selector: string,
  sinceMillis: number
): Effect.Effect<ReadonlyArray<Readonly<Record<string, string>>>, PrometheusQueryError> =>
  Effect.tryPromise({
    try: async () => {
      const search = new URLSearchParams({
        query: selector,
        start: String(sinceMillis / 1000),
        end: String(Date.now() / 1000 + 60)
      })
      const response = await fetch(`${requiredServer("PROMETHEUS_URL")}/api/v1/query_exemplars?${search}`)
      return (await response.json()) as {
        status: string
        error?: string
        data?: ReadonlyArray<{ exemplars: ReadonlyArray<{ labels: Record<string, string> }> }>
      }
    },
    catch: (cause) => new PrometheusQueryError({ query: selector, reason: String(cause) })
  }).pipe(
    Effect.flatMap((answer) =>
      answer.status === "success" && answer.data !== undefined
        ? Effect.succeed(answer.data.flatMap((series) => series.exemplars.map((exemplar) => exemplar.labels)))
        : Effect.fail(new PrometheusQueryError({ query: selector, reason: answer.error ?? "no data" }))
    )
  )

/** The single value of a query answering at most one series, or undefined when it answers none. */
export const prometheusValue = (query: string): Effect.Effect<number | undefined, PrometheusQueryError> =>
  Effect.flatMap(prometheusQuery(query), (series) =>
    series.length <= 1
      ? Effect.succeed(series[0]?.value)
      : Effect.fail(new PrometheusQueryError({ query, reason: `${series.length} series where one was expected` }))
  )

/**
 * Prometheus scrapes `targets` (host:port) until the scope closes, with `labels` on every series (`job`
 * defaults to `name`): a file `<name>.json` in its file_sd folder (`PROMETHEUS_SD_DIR`), as a service discovery
 * would announce them. Prometheus applies discovery changes every five seconds at most, so the first scrape
 * comes some seconds later: wait on the series, not on time.
 */
export const scrapedByPrometheus = (
  name: string,
  targets: ReadonlyArray<string>,
  labels: Readonly<Record<string, string>> = {}
) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const file = join(requiredServer("PROMETHEUS_SD_DIR"), `${name}.json`)
      writeFileSync(file, JSON.stringify([{ targets, labels: { job: name, ...labels } }]))
      return file
    }),
    (file) => Effect.sync(() => rmSync(file, { force: true }))
  )
