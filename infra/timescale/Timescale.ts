// TimescaleDB for tests and for running DexMon here: PGlite with the TimescaleDB extension (npm, no
// Docker), served over the PostgreSQL wire protocol by infra/timescale/serve.ts, one Node process.
// `up timescale` starts one that outlives the command (data under .infra/timescale); `privateTimescale`
// starts one in memory for one test file. It serves one session at a time (see serve.ts): clients use a
// pool of one connection (`DEXMON_PG_POOL_SIZE=1`).
import { type ChildProcess, spawn } from "node:child_process"
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs"
import { join } from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { acceptsTcp, isAlive, stopProcess, tailOfFile, tailOfText } from "../Processes.ts"
import { infraDirectory, repositoryRoot, type TimescaleState } from "../State.ts"

const host = "127.0.0.1"
const defaultPort = 15433
const readyTimeoutMs = 60_000
const serveScript = join(import.meta.dirname, "serve.ts")
const timescaleDirectory = join(infraDirectory, "timescale")

/** Port from DEXMON_TIMESCALE_PORT (default 15433). */
export const timescalePort = (): number => {
  const configured = process.env.DEXMON_TIMESCALE_PORT
  const port = configured === undefined || configured === "" ? defaultPort : Number(configured)
  if (!Number.isInteger(port) || port <= 0 || port >= 65536) {
    throw new Error(`DEXMON_TIMESCALE_PORT must be a port number below 65536, got "${configured}"`)
  }
  return port
}

/**
 * The URL a client uses. The server asks for a password and takes any; it speaks no TLS (it answers an
 * SSL request wrongly), so the URL turns it off.
 */
export const timescaleUrl = (port: number): string =>
  `postgres://postgres:timescale@${host}:${port}/postgres?sslmode=disable`

export const timescaleEnvironment = (port: number): Record<string, string> => ({ TIMESCALE_URL: timescaleUrl(port) })

const readyLine = (text: string) => /^ready (\S+) \((.*)\)$/m.exec(text)

/** Starts the detached server on its data folder and waits until it says it is ready. */
export const startTimescale = async (onSpawned: (state: TimescaleState) => void): Promise<TimescaleState> => {
  const port = timescalePort()
  if (await acceptsTcp(host, port)) throw new Error(`${host}:${port} is taken: stop it or set DEXMON_TIMESCALE_PORT`)
  mkdirSync(timescaleDirectory, { recursive: true })
  const dataDirectory = mkdtempSync(join(timescaleDirectory, "data-"))
  const logFile = join(dataDirectory, "server.log")
  const out = openSync(logFile, "a")
  const child = spawn(process.execPath, [serveScript, String(port), join(dataDirectory, "pgdata")], {
    cwd: repositoryRoot,
    detached: true,
    stdio: ["ignore", out, out]
  })
  closeSync(out)
  child.unref()
  const state: TimescaleState = {
    pid: child.pid!,
    host,
    port,
    dataDirectory,
    startedAt: new Date().toISOString()
  }
  onSpawned(state)
  const deadline = Date.now() + readyTimeoutMs
  while (readyLine(readFileSync(logFile, "utf8")) === null) {
    if (!isAlive(state.pid) || Date.now() > deadline) {
      await stopTimescale(state).catch(() => undefined)
      throw new Error(
        `TimescaleDB (pglite) did not get ready within ${readyTimeoutMs / 1000} s:\n${tailOfFile(logFile)}`
      )
    }
    await sleep(100)
  }
  return state
}

export const isTimescaleRunning = (state: TimescaleState): boolean => isAlive(state.pid)

/** What the server said when it got ready (its TimescaleDB version and data folder). */
export const timescaleDescription = (state: TimescaleState): string =>
  readyLine(readFileSync(join(state.dataDirectory, "server.log"), "utf8"))?.[2] ?? "no ready line"

export const timescaleAnswers = (state: TimescaleState): Promise<boolean> => acceptsTcp(state.host, state.port)

/** SIGTERM (the server closes its database), then removes the data folder. */
export const stopTimescale = async (state: TimescaleState): Promise<void> => {
  if (isAlive(state.pid)) await stopProcess(state.pid, 15_000)
  rmSync(state.dataDirectory, { recursive: true, force: true })
}

/** A TimescaleDB of one test file's own, in memory, stopped with the test process at the latest. */
export interface PrivateTimescale {
  /** A `DATABASE_URL` for it. */
  readonly url: string
  readonly stop: () => Promise<void>
}

export const privateTimescale = async (): Promise<PrivateTimescale> => {
  const child: ChildProcess = spawn(process.execPath, [serveScript, "0"], {
    cwd: repositoryRoot,
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  child.stdout!.on("data", (chunk: Buffer) => {
    output += chunk.toString()
  })
  child.stderr!.on("data", (chunk: Buffer) => {
    output += chunk.toString()
  })
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  const deadline = Date.now() + readyTimeoutMs
  for (;;) {
    const ready = readyLine(output)
    if (ready !== null) {
      const port = Number(ready[1]!.split(":").at(-1))
      return {
        url: timescaleUrl(port),
        stop: async () => {
          if (child.exitCode === null && child.signalCode === null) {
            child.kill("SIGTERM")
            await exited
          }
        }
      }
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL")
      throw new Error(`a private TimescaleDB (pglite) did not get ready:\n${tailOfText(output)}`)
    }
    await sleep(50)
  }
}
