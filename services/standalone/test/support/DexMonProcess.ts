import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { freePort } from "@dexmon/ports"
import { Effect, Schedule, type Scope } from "effect"

const mainModule = resolve(import.meta.dirname, "../../src/main.ts")

/** The environment without the connection variables the test runner sets: this process runs on embedded stores. */
const embeddedOnly = (env: NodeJS.ProcessEnv): NodeJS.ProcessEnv => {
  const { KAFKA_BROKERS: _kafka, DATABASE_URL: _database, CASSANDRA_CONTACT_POINTS: _cassandra, ...rest } = env
  return rest
}

/**
 * DexMon started the way a user starts it (`node services/standalone/src/main.ts`,
 * which is what `pnpm start` runs) as a separate OS process, on its own data
 * directory and ports, so a test can kill it with SIGKILL and start it again
 * on the same data.
 */
export const makeDexMonProcess = Effect.gen(function* () {
  const dataDir = yield* Effect.acquireRelease(
    Effect.sync(() => mkdtempSync(join(tmpdir(), "dexmon-e2e-"))),
    (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
  )
  const port = yield* freePort
  const pgPort = yield* freePort
  const baseUrl = `http://127.0.0.1:${port}`
  const output: Array<string> = []
  let child: ChildProcess | undefined

  const exited = (proc: ChildProcess) =>
    Effect.callback<void>((resume) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return resume(Effect.void)
      proc.once("exit", () => resume(Effect.void))
    })

  const isReady = Effect.tryPromise(() => fetch(`${baseUrl}/readyz`).then((response) => response.ok)).pipe(
    Effect.orElseSucceed(() => false)
  )

  const launch = (env: Record<string, string>) => {
    const proc = spawn(process.execPath, [mainModule], {
      env: {
        ...embeddedOnly(process.env),
        PORT: String(port),
        DEXMON_DATA_DIR: dataDir,
        DEXMON_EMBEDDED_PG_PORT: String(pgPort),
        DEXMON_LOG_FORMAT: "json",
        ...env
      },
      stdio: ["ignore", "pipe", "pipe"]
    })
    child = proc
    proc.stdout?.on("data", (chunk) => output.push(String(chunk)))
    proc.stderr?.on("data", (chunk) => output.push(String(chunk)))
    return proc
  }

  /** Starts the process with extra environment and waits for it to exit on its own. */
  const runToExit = (env: Record<string, string>) =>
    Effect.gen(function* () {
      const proc = launch(env)
      yield* exited(proc)
      return { code: proc.exitCode, output: output.join("") }
    })

  /** Starts the process and waits until `/readyz` answers 200. */
  const start = Effect.gen(function* () {
    const proc = launch({})
    const ready = yield* isReady.pipe(
      Effect.repeat({
        schedule: Schedule.spaced("100 millis"),
        until: (ok) => ok || proc.exitCode !== null,
        times: 600
      })
    )
    if (!ready) {
      return yield* Effect.die(new Error(`DexMon did not become ready:\n${output.join("").slice(-4000)}`))
    }
  })

  /** SIGKILL: no finalizer runs, exactly like a crash or an OOM kill. */
  const kill9 = Effect.gen(function* () {
    if (child === undefined) return
    child.kill("SIGKILL")
    yield* exited(child)
  })

  /** SIGINT, as Ctrl-C: the graceful shutdown path. */
  const stop = Effect.gen(function* () {
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
    child.kill("SIGINT")
    yield* exited(child)
  })

  yield* Effect.addFinalizer(() => stop)
  return { baseUrl, start, runToExit, kill9, stop, output: () => output.join("") }
})

export type DexMonProcess = Effect.Success<typeof makeDexMonProcess>
export type { Scope }
