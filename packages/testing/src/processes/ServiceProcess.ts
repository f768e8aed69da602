import { type ChildProcess, spawn } from "node:child_process"
import { resolve } from "node:path"
import { freePort } from "@dexmon/ports"
import { Clock, Effect } from "effect"
import { eventually } from "../Eventually.ts"

export type ServiceName =
  | "standalone"
  | "receiver"
  | "processor"
  | "notifier"
  | "deliverer"
  | "gateway"
  | "nightscout"
  | "archiver"

/** Each service's entry point, as `pnpm <service>` runs it. */
const entryOf = (service: ServiceName) => resolve(import.meta.dirname, `../../../../services/${service}/src/main.ts`)

/** How a process ended. */
export interface ProcessExit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

const exitOf = (proc: ChildProcess): ProcessExit => ({ code: proc.exitCode, signal: proc.signalCode })
const hasExited = (proc: ChildProcess) => proc.exitCode !== null || proc.signalCode !== null

/** Resumes once `proc` has exited (at once if it already has), with how it ended. */
const exited = (proc: ChildProcess) =>
  Effect.callback<ProcessExit>((resume) => {
    if (hasExited(proc)) return resume(Effect.succeed(exitOf(proc)))
    proc.once("exit", () => resume(Effect.succeed(exitOf(proc))))
  })

/**
 * One DexMon service started as its own OS process, configured only through environment
 * variables, as it runs in production: the test can kill it with SIGKILL and start it again, as
 * often as it likes, on the same port. Its stdout and stderr are kept (`output`), across restarts,
 * for the test's failure messages. Stopped (SIGTERM) with the scope.
 */
export const makeServiceProcess = Effect.fnUntraced(function* (
  service: ServiceName,
  env: Record<string, string | undefined>
) {
  const port = yield* freePort
  const baseUrl = `http://127.0.0.1:${port}`
  const output: Array<string> = []
  let child: ChildProcess | undefined

  /** Starts the process and returns at once, without waiting for anything. */
  const launch = (extra: Record<string, string> = {}) =>
    Effect.sync(() => {
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
    })

  const isReady = Effect.tryPromise(() => fetch(`${baseUrl}/readyz`).then((response) => response.ok)).pipe(
    Effect.orElseSucceed(() => false)
  )

  /** Starts the process and waits until `/readyz` answers 200; dies with the process's output otherwise. */
  const start = Effect.gen(function* () {
    const proc = yield* launch()
    const tail = () => output.join("").slice(-4000)
    const ready = yield* eventually(isReady, (ok) => ok || hasExited(proc), {
      what: `${service} ready (GET ${baseUrl}/readyz answering 200)`,
      every: "100 millis",
      times: 600
    }).pipe(Effect.catchTag("EventuallyTimeout", (timeout) => Effect.die(new Error(`${timeout.message}\n${tail()}`))))
    if (!ready) {
      return yield* Effect.die(
        new Error(`${service} exited before it was ready (${proc.exitCode ?? proc.signalCode}):\n${tail()}`)
      )
    }
  })

  /** Starts the process with extra environment and waits for it to exit on its own. */
  const runToExit = (extra: Record<string, string> = {}) =>
    Effect.gen(function* () {
      const ended = yield* exited(yield* launch(extra))
      return { ...ended, output: output.join("") }
    })

  /** SIGKILL: no finalizer runs, exactly like a crash or an OOM kill. Answers how the process ended. */
  const kill9 = Effect.suspend(() => {
    if (child === undefined) return Effect.succeed<ProcessExit>({ code: null, signal: null })
    child.kill("SIGKILL")
    return exited(child)
  })

  /** SIGTERM, as Kubernetes sends: the graceful shutdown path. */
  const stop = Effect.suspend(() => {
    if (child === undefined || hasExited(child)) return Effect.void
    child.kill("SIGTERM")
    return Effect.asVoid(exited(child))
  })

  /** SIGTERM and wait: how the process ended and how long the graceful shutdown took. */
  const terminate = Effect.gen(function* () {
    const proc = child
    if (proc === undefined || hasExited(proc)) {
      return yield* Effect.die(new Error(`${service} is not running`))
    }
    const started = yield* Clock.currentTimeMillis
    proc.kill("SIGTERM")
    const ended = yield* exited(proc)
    return { ...ended, millis: (yield* Clock.currentTimeMillis) - started }
  })

  /** The OS pid of the running process (to read its memory from /proc); undefined before `start`. */
  const pid = () => child?.pid

  /** Whether the process last started has exited (false before any start). */
  const hasEnded = () => child !== undefined && hasExited(child)

  yield* Effect.addFinalizer(() => stop)
  return {
    service,
    baseUrl,
    launch,
    start,
    runToExit,
    kill9,
    stop,
    terminate,
    pid,
    hasEnded,
    output: () => output.join("")
  }
})

export type ServiceProcess = Effect.Success<ReturnType<typeof makeServiceProcess>>
