import { eventually, freePort, makeServiceProcess, prometheusQuery, requiredServer, tempDir } from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect } from "effect"

/** The archiver's group on the Pushgateway, as the Pushgateway's API lists it. */
interface PushedGroup {
  readonly labels: Readonly<Record<string, string>>
  readonly push_time_seconds: { readonly metrics: ReadonlyArray<{ readonly value: string }> }
  readonly [family: string]: unknown
}

describe("pnpm archive on the embedded default", () => {
  it.live(
    "runs once, exits 0, pushes its metrics to the harness's Pushgateway, and Prometheus scrapes them from there",
    () =>
      Effect.gen(function* () {
        const pushgateway = requiredServer("PUSHGATEWAY_URL")
        const postgresPort = yield* freePort
        const dataDir = yield* tempDir("archiver")
        const { S3_BUCKET: _bucket, DATABASE_URL: _database, ...env } = process.env
        const archiver = yield* makeServiceProcess("archiver", {
          ...env,
          DEXMON_DATA_DIR: dataDir,
          DEXMON_EMBEDDED_PG_PORT: String(postgresPort),
          DEXMON_PUSHGATEWAY_URL: pushgateway
        })
        // Push times are whole seconds or finer: a push of this run is one at or after this second.
        const before = Math.floor((yield* Clock.currentTimeMillis) / 1000)
        const exit = yield* archiver.runToExit()
        assert.strictEqual(exit.code, 0, exit.output.slice(-3000))
        assert.match(exit.output, /archive run finished/)

        // The Pushgateway holds the run's metrics under job dexmon-archiver, pushed now.
        const groups = yield* Effect.promise(() =>
          fetch(`${pushgateway}/api/v1/metrics`).then(
            (response) => response.json() as Promise<{ data: Array<PushedGroup> }>
          )
        )
        const archiverGroup = groups.data.find((group) => group.labels.job === "dexmon-archiver")
        assert.isDefined(archiverGroup, JSON.stringify(groups.data.map((group) => group.labels)))
        assert.isAtLeast(Number(archiverGroup!.push_time_seconds.metrics[0]!.value), before)
        assert.property(archiverGroup, "dexmon_archived_rows_total")

        // Prometheus scrapes the Pushgateway (honor_labels: the pushed job and service labels stay).
        const scraped = yield* eventually(
          prometheusQuery(`push_time_seconds{job="dexmon-archiver"} >= ${before}`),
          (series) => series.length === 1,
          { what: "this run's push scraped by Prometheus", every: "500 millis", times: 60 }
        )
        assert.strictEqual(scraped[0]!.metric.job, "dexmon-archiver")
        const rows = yield* prometheusQuery(`dexmon_archived_rows_total{job="dexmon-archiver"}`)
        assert.deepStrictEqual(
          rows.map((series) => [series.metric.service, series.value]),
          [["archiver", 0]]
        )
      }),
    120_000
  )
})
