// What the three JVM servers of the harness (Kafka, Cassandra, S3Proxy) share: the java
// command, the port check, starting a detached JVM that outlives `up` and waiting until it
// answers, reporting its logs when it does not, and stopping it.
import { spawn } from "node:child_process"
import { closeSync, openSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { acceptsTcp, isAlive, seconds, stopProcess, tailOfFile, tailOfText } from "./Processes.ts"

/** `java` of `javaHome` (default `JAVA_HOME`), else the one on PATH. */
export const javaCommand = (javaHome = process.env.JAVA_HOME): string =>
  javaHome ? join(javaHome, "bin", "java") : "java"

/** Fails when another process already listens on one of the ports; `hint` says what to do about it. */
export const requireFreePorts = async (host: string, ports: ReadonlyArray<number>, hint: string): Promise<void> => {
  for (const port of ports) {
    if (await acceptsTcp(host, port)) {
      throw new Error(`${host}:${port} is already in use by a process this harness did not start; ${hint}`)
    }
  }
}

/** Java stack traces are long and mostly frames; the messages and "Caused by:" lines say what went wrong. */
const withoutStackFrames = (log: string): string =>
  tailOfText(
    log
      .split("\n")
      .filter((line) => !/^\s+(at |\.\.\. \d+ more)/.test(line))
      .join("\n"),
    30
  )

/** What a readiness wait found: the server's answer, or why it is not ready (the last problem seen, if any). */
export type Readiness<A> =
  | { readonly ready: true; readonly answer: A }
  | { readonly ready: false; readonly problem?: string }

export interface DetachedJvm<S, A> {
  /** How the server is named in errors, e.g. `Kafka 4.4.0`. */
  readonly name: string
  readonly java: string
  readonly args: ReadonlyArray<string>
  readonly dataDirectory: string
  readonly logsDirectory: string
  /** The server's own log in `logsDirectory`, whose tail explains a failed start. */
  readonly serverLog: string
  readonly pidFile: string
  readonly readyTimeoutMs: number
  /** The state to record for the JVM with this pid. */
  readonly stateOf: (pid: number) => S
  /** Where the server answers, for errors. */
  readonly addressOf: (state: S) => string
  /** Runs as soon as the JVM exists, so the caller records it before the wait: an interrupted `up` still finds it for `down`. */
  readonly onSpawned: (state: S) => void
  /** Polls until the server answers; gives up at the timeout or once `stillRunning` says the JVM died. */
  readonly waitUntilReady: (state: S, timeoutMs: number, stillRunning: () => boolean) => Promise<Readiness<A>>
  readonly stop: (state: S) => Promise<void>
}

/**
 * Starts the JVM detached (its own process group, unreferenced, so `up` returns while it
 * runs) with its stdout/stderr in `jvm.out`, records its pid, and waits until it answers.
 * On failure it reads the logs, stops the JVM (removing its data) and throws with them.
 */
export const startDetachedJvm = async <S, A>(jvm: DetachedJvm<S, A>): Promise<{ state: S; answer: A }> => {
  // The JVM's own output: crashes before the server's logging is up (a bad flag, a bad configuration file).
  const jvmOutputPath = join(jvm.logsDirectory, "jvm.out")
  const jvmOutput = openSync(jvmOutputPath, "a")
  const child = spawn(jvm.java, jvm.args, { detached: true, stdio: ["ignore", jvmOutput, jvmOutput] })
  closeSync(jvmOutput)
  const spawnFailure = new Promise<Error>((resolve) => child.once("error", resolve))
  child.unref()
  const pid = child.pid
  if (pid === undefined) {
    rmSync(jvm.dataDirectory, { recursive: true, force: true })
    throw await spawnFailure
  }
  writeFileSync(jvm.pidFile, `${pid}\n`)
  const state = jvm.stateOf(pid)
  jvm.onSpawned(state)
  const readiness = await jvm.waitUntilReady(state, jvm.readyTimeoutMs, () => isAlive(pid))
  if (readiness.ready) return { state, answer: readiness.answer }
  const reason = isAlive(pid)
    ? `did not answer within ${seconds(jvm.readyTimeoutMs)}${readiness.problem === undefined ? "" : ` (last: ${readiness.problem})`}`
    : "exited during start-up"
  // Read before `stop` removes the data folder.
  const diagnostics = [
    `--- ${jvm.serverLog} (tail, stack frames left out)`,
    withoutStackFrames(tailOfFile(join(jvm.logsDirectory, jvm.serverLog), 400)),
    "--- JVM stdout/stderr (tail)",
    tailOfFile(jvmOutputPath)
  ].join("\n")
  await jvm.stop(state)
  throw new Error(`${jvm.name} on ${jvm.addressOf(state)} ${reason}\n${diagnostics}`)
}

/** Stops the JVM (SIGTERM, SIGKILL after 30 s) if it still runs, then removes its data folder and the pid file. */
export const stopJvm = async (running: boolean, pid: number, dataDirectory: string, pidFile: string): Promise<void> => {
  if (running) await stopProcess(pid, 30_000)
  rmSync(dataDirectory, { recursive: true, force: true })
  rmSync(pidFile, { force: true })
}
