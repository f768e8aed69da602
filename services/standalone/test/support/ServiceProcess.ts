import { type ChildProcess, spawn } from "node:child_process"
import { resolve } from "node:path"
import { freePort } from "@dexmon/ports"
import { Effect, Schedule } from "effect"

export type ServiceName = "standalone" | "receiver" | "processor" | "notifier" | "deliverer" | "gateway" | "archiver"

const entryOf = (service: ServiceName) => resolve(import.meta.dirname, `../../../${service}/src/main.ts`)

/**
 * One DexMon service started as its own OS process, configured only through
 * environment variables, as it runs in production: the test can kill it with
 * SIGKILL and start it again.
 */
export const makeServiceProcess = (service: ServiceName, env: Record<string, string | undefined>) =>
  Effect.gen(function* () {
    const port = yield* freePort
    const baseUrl = `http://127.0.0.1:${port}`
    const output: Array<string> = []
    let child: ChildProcess | undefined

    const exited = (proc: ChildProcess) =>
      Effect.callback<void>((resume) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resume(Effect.void)
        proc.once("exit", () => resume(Effect.void))
      })

    const launch = (extra: Record<string, string>) => {
      const proc = spawn(process.execPath, [entryOf(service)], {
        // These tests post thousands of readings as one user to check delivery, not the per-user rate
        // limit (which has its own test): it is off unless a test sets it.
        env: { DEXMON_RATE_LIMIT_PER_SECOND: "0", ...env, PORT: String(port), DEXMON_LOG_FORMAT: "json", ...extra },
        stdio: ["ignore", "pipe", "pipe"]
      })
      child = proc
      proc.stdout?.on("data", (chunk) => output.push(String(chunk)))
      proc.stderr?.on("data", (chunk) => output.push(String(chunk)))
      return proc
    }

    const isReady = Effect.tryPromise(() => fetch(`${baseUrl}/readyz`).then((response) => response.ok)).pipe(
      Effect.orElseSucceed(() => false)
    )

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
      if (!ready)
        return yield* Effect.die(new Error(`${service} did not become ready:\n${output.join("").slice(-4000)}`))
    })

    /** Starts the process with extra environment and waits for it to exit on its own. */
    const runToExit = (extra: Record<string, string>) =>
      Effect.gen(function* () {
        const proc = launch(extra)
        yield* exited(proc)
        return { code: proc.exitCode, output: output.join("") }
      })

    /** SIGKILL: no finalizer runs, exactly like a crash or an OOM kill. */
    const kill9 = Effect.gen(function* () {
      if (child === undefined) return
      child.kill("SIGKILL")
      yield* exited(child)
    })

    /** SIGTERM, as Kubernetes sends: the graceful shutdown path. */
    const stop = Effect.gen(function* () {
      if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
      child.kill("SIGTERM")
      yield* exited(child)
    })

    /** SIGTERM and wait: how the process ended and how long the graceful shutdown took. */
    const terminate = Effect.gen(function* () {
      const proc = child
      if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) {
        return yield* Effect.die(new Error(`${service} is not running`))
      }
      const started = Date.now()
      proc.kill("SIGTERM")
      yield* exited(proc)
      return { code: proc.exitCode, signal: proc.signalCode, millis: Date.now() - started }
    })

    /** The OS pid of the running process (to read its memory from /proc); undefined before `start`. */
    const pid = () => child?.pid

    yield* Effect.addFinalizer(() => stop)
    return { baseUrl, start, runToExit, kill9, stop, terminate, pid, output: () => output.join("") }
  })

export type ServiceProcess = Effect.Success<ReturnType<typeof makeServiceProcess>>
