import { spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { createServer } from "node:http"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { freePort } from "@dexmon/ports"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"

const archiverMain = resolve(import.meta.dirname, "../src/main.ts")

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
        const dataDir = yield* Effect.acquireRelease(
          Effect.sync(() => mkdtempSync(join(tmpdir(), "dexmon-archiver-"))),
          (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
        )
        const { S3_BUCKET: _bucket, DATABASE_URL: _database, ...env } = process.env
        const exit = yield* Effect.callback<{ code: number | null; output: string }>((resume) => {
          const output: Array<string> = []
          const child = spawn(process.execPath, [archiverMain], {
            env: {
              ...env,
              DEXMON_DATA_DIR: dataDir,
              DEXMON_EMBEDDED_PG_PORT: String(postgresPort),
              DEXMON_PUSHGATEWAY_URL: `http://127.0.0.1:${port}`,
              DEXMON_LOG_FORMAT: "json"
            },
            stdio: ["ignore", "pipe", "pipe"]
          })
          child.stdout.on("data", (chunk) => output.push(String(chunk)))
          child.stderr.on("data", (chunk) => output.push(String(chunk)))
          child.once("exit", (code) => resume(Effect.succeed({ code, output: output.join("") })))
        })
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
