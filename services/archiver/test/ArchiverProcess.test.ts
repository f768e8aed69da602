import { createServer } from "node:http"
import { freePort, makeServiceProcess, tempDir } from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"

describe("pnpm archive on the embedded default", () => {
  it.live(
    "runs once, exits 0, and pushes its metrics to the Pushgateway it is given",
    () =>
      Effect.gen(function* () {
        const pushes: Array<{ method: string; url: string; body: string }> = []
        const port = yield* freePort
        const gateway = createServer((request, response) => {
          let body = ""
          request.on("data", (chunk) => {
            body += String(chunk)
          })
          request.on("end", () => {
            pushes.push({ method: request.method ?? "", url: request.url ?? "", body })
            response.end()
          })
        })
        yield* Effect.acquireRelease(
          Effect.callback<void>((resume) => {
            gateway.listen(port, "127.0.0.1", () => resume(Effect.void))
          }),
          () => Effect.sync(() => gateway.close())
        )
        const postgresPort = yield* freePort
        const dataDir = yield* tempDir("archiver")
        const { S3_BUCKET: _bucket, DATABASE_URL: _database, ...env } = process.env
        const archiver = yield* makeServiceProcess("archiver", {
          ...env,
          DEXMON_DATA_DIR: dataDir,
          DEXMON_EMBEDDED_PG_PORT: String(postgresPort),
          DEXMON_PUSHGATEWAY_URL: `http://127.0.0.1:${port}`
        })
        const exit = yield* archiver.runToExit()
        assert.strictEqual(exit.code, 0, exit.output.slice(-3000))
        assert.match(exit.output, /archive run finished/)
        assert.strictEqual(pushes.length, 1)
        assert.strictEqual(pushes[0]!.method, "POST")
        assert.strictEqual(pushes[0]!.url, "/metrics/job/dexmon-archiver")
        assert.match(pushes[0]!.body, /^dexmon_archived_rows_total\{service="archiver"\} 0$/m)
      }),
    120_000
  )
})
