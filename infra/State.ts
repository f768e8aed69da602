// What the harness started, kept in .infra/state.json so that a later `down`, `env`
// or `status` (another process) finds it, plus a lock so that two `up`s at once
// (two test runs, parallel Vitest projects) do not both start a server.
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { isAlive, log } from "./Processes.ts"
import type { PrometheusServersState } from "./prometheus/PrometheusServers.ts"

export const repositoryRoot = resolve(import.meta.dirname, "..")
/** Ignored by git: downloaded jars, generated configs, data folders, state. */
export const infraDirectory = join(repositoryRoot, ".infra")
const stateFile = join(infraDirectory, "state.json")
const lockFile = join(infraDirectory, "lock")

export interface KafkaState {
  readonly pid: number
  readonly version: string
  readonly host: string
  readonly brokerPort: number
  readonly controllerPort: number
  readonly dataDirectory: string
  readonly startedAt: string
}

export interface CassandraState {
  readonly pid: number
  readonly version: string
  readonly host: string
  readonly nativePort: number
  readonly storagePort: number
  readonly dataDirectory: string
  readonly startedAt: string
}

export interface S3State {
  readonly pid: number
  readonly version: string
  readonly host: string
  readonly port: number
  /** Holds the properties file, the logs and the objects (blobs/); kept across a restart of the JVM, removed by `down`. */
  readonly dataDirectory: string
  readonly startedAt: string
}

export interface TimescaleState {
  readonly pid: number
  readonly host: string
  readonly port: number
  /** Holds the server's log and its database files (pgdata/); removed by `down`. */
  readonly dataDirectory: string
  readonly startedAt: string
}

export interface ZipkinState {
  readonly pid: number
  readonly version: string
  readonly host: string
  readonly port: number
  /** Holds the server's log (the spans are in its memory); removed by `down`. */
  readonly dataDirectory: string
  readonly startedAt: string
}

export interface InfraState {
  readonly kafka?: KafkaState
  readonly cassandra?: CassandraState
  readonly s3?: S3State
  readonly timescale?: TimescaleState
  readonly zipkin?: ZipkinState
  /** Prometheus, Alertmanager and the Pushgateway (`up observability`). */
  readonly prometheusServers?: PrometheusServersState
}

export const readState = (): InfraState => {
  try {
    return JSON.parse(readFileSync(stateFile, "utf8")) as InfraState
  } catch {
    return {}
  }
}

export const writeState = (state: InfraState): void => {
  mkdirSync(infraDirectory, { recursive: true })
  // Write-then-rename, so a reader never sees half a file.
  const temporary = `${stateFile}.${process.pid}`
  writeFileSync(temporary, `${JSON.stringify(state, null, 2)}\n`)
  renameSync(temporary, stateFile)
}

const lockOwner = (): number | undefined => {
  try {
    const pid = Number(readFileSync(lockFile, "utf8"))
    return Number.isInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

/**
 * Runs `action` while holding .infra/lock (a file holding the owner's pid, created
 * with O_EXCL). A lock whose owner died is taken over.
 */
export const withLock = async <A>(action: () => Promise<A>, timeoutMs = 300_000): Promise<A> => {
  mkdirSync(infraDirectory, { recursive: true })
  const deadline = Date.now() + timeoutMs
  let waitingReported = false
  for (;;) {
    try {
      writeFileSync(lockFile, String(process.pid), { flag: "wx" })
      break
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error
    }
    const owner = lockOwner()
    // An empty lock file is one being written right now, unless it is old (its writer died in between).
    const ownerGone = owner === undefined ? ageOfLockMs() > 5_000 : owner !== process.pid && !isAlive(owner)
    if (ownerGone) {
      rmSync(lockFile, { force: true })
      continue
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${lockFile} (held by pid ${owner})`)
    if (!waitingReported) {
      log(`waiting for another infra command (pid ${owner}) to finish`)
      waitingReported = true
    }
    await sleep(200)
  }
  try {
    return await action()
  } finally {
    rmSync(lockFile, { force: true })
  }
}

const ageOfLockMs = (): number => {
  try {
    return Date.now() - statSync(lockFile).mtimeMs
  } catch {
    return 0
  }
}
