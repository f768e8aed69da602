// Zipkin for tests and for running DexMon here: a trace store with a UI and an HTTP API, Zipkin's runnable
// server jar from Maven Central (no Docker), one JVM on 127.0.0.1 keeping spans in memory. DexMon's
// services send it their spans with OpenTelemetry's Zipkin exporter (`OTEL_TRACES_EXPORTER=zipkin`).
// See /work/shared/infra.md for the facts this relies on.
import { mkdirSync, mkdtempSync } from "node:fs"
import { join } from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { javaCommand, requireFreePorts, startDetachedJvm, stopJvm } from "../Jvm.ts"
import { fetchJars, runtimePom } from "../Maven.ts"
import { commandLine, isAlive } from "../Processes.ts"
import { infraDirectory, type ZipkinState } from "../State.ts"

/** The release infra.md names; override with DEXMON_ZIPKIN_VERSION. */
export const defaultZipkinVersion = "3.5.1"
const defaultPort = 9411
const host = "127.0.0.1"
const readyTimeoutMs = 120_000

const zipkinDirectory = join(infraDirectory, "zipkin")
const pidFile = join(zipkinDirectory, "zipkin.pid")

export const zipkinVersion = (): string => process.env.DEXMON_ZIPKIN_VERSION ?? defaultZipkinVersion

/** Port from DEXMON_ZIPKIN_PORT (default 9411, Zipkin's own). */
export const zipkinPort = (): number => {
  const configured = process.env.DEXMON_ZIPKIN_PORT
  const port = configured === undefined || configured === "" ? defaultPort : Number(configured)
  if (!Number.isInteger(port) || port <= 0 || port >= 65536) {
    throw new Error(`DEXMON_ZIPKIN_PORT must be a port number below 65536, got "${configured}"`)
  }
  return port
}

export const zipkinUrl = (state: ZipkinState): string => `http://${state.host}:${state.port}`

/** Where a client (a test reading traces back) finds the server's API and UI. */
export const zipkinEnvironment = (state: ZipkinState): Record<string, string> => ({ ZIPKIN_URL: zipkinUrl(state) })

/**
 * What makes a DexMon service started from this environment send its spans to the server: Zipkin v2 JSON,
 * which Zipkin takes on `/api/v2/spans` without any extra module (OTLP would need one).
 */
export const zipkinExporterEnvironment = (state: ZipkinState): Record<string, string> => ({
  OTEL_TRACES_EXPORTER: "zipkin",
  OTEL_EXPORTER_ZIPKIN_ENDPOINT: `${zipkinUrl(state)}/api/v2/spans`
})

// ---------------------------------------------------------------------------------------------
// Jar

const pom = (version: string): string =>
  runtimePom({
    generatedBy: "infra/zipkin/Zipkin.ts",
    purpose: `only used to copy Zipkin ${version}'s runnable server jar into lib/.`,
    artifactId: "zipkin-runtime",
    version,
    body: `  <dependencies>
    <!--
      The runnable jar (classifier exec, some 130 MB): Spring Boot's, with every library inside. The plain
      jar's dependencies are not needed beside it, so none is copied.
    -->
    <dependency>
      <groupId>io.zipkin</groupId>
      <artifactId>zipkin-server</artifactId>
      <version>${version}</version>
      <classifier>exec</classifier>
      <exclusions>
        <exclusion>
          <groupId>*</groupId>
          <artifactId>*</artifactId>
        </exclusion>
      </exclusions>
    </dependency>
  </dependencies>`
  })

/** The folder holding Zipkin `version`'s runnable jar (`.infra/zipkin/<version>/lib`), copied there by Maven on first use. */
export const ensureZipkinJar = async (
  version: string
): Promise<{ readonly jar: string; readonly downloaded: boolean }> => {
  const { libDirectory, downloaded } = await fetchJars({
    name: "Zipkin",
    version,
    versionDirectory: join(zipkinDirectory, version),
    pom: pom(version)
  })
  return { jar: join(libDirectory, `zipkin-server-${version}-exec.jar`), downloaded }
}

// ---------------------------------------------------------------------------------------------
// Start and stop

const logsDirectory = (dataDirectory: string) => join(dataDirectory, "logs")
const logFile = (dataDirectory: string) => join(logsDirectory(dataDirectory), "zipkin.log")

const jvmArguments = (jar: string, dataDirectory: string, port: number): ReadonlyArray<string> => [
  // Spans of test runs, in memory (STORAGE_TYPE=mem keeps at most 500,000 spans): a small heap is plenty.
  "-Xms64m",
  "-Xmx256m",
  "-XX:+ExitOnOutOfMemoryError",
  "-Djava.awt.headless=true",
  "-jar",
  jar,
  // Zipkin has no setting for the address it binds (QUERY_PORT sets only the port): Armeria's port list,
  // replaced whole (Spring binds a list from one source), puts it on loopback.
  `--armeria.ports[0].ip=${host}`,
  `--armeria.ports[0].port=${port}`,
  "--armeria.ports[0].protocols[0]=http",
  // Its log in the data folder, besides stdout (jvm.out): a failed start shows it, and the path names the JVM.
  `--logging.file.name=${logFile(dataDirectory)}`
]

/** True when `state.pid` is still the Zipkin JVM started for `state` (and not a reused pid). */
export const isZipkinRunning = (state: ZipkinState): boolean =>
  isAlive(state.pid) && commandLine(state.pid).includes(`--logging.file.name=${logFile(state.dataDirectory)}`)

/** GET /health: undefined when Zipkin says it is UP, else why not. */
export const zipkinProblem = async (state: ZipkinState): Promise<string | undefined> => {
  try {
    const response = await fetch(`${zipkinUrl(state)}/health`, { signal: AbortSignal.timeout(3_000) })
    const body = await response.text()
    if (response.ok && (JSON.parse(body) as { status?: string }).status === "UP") return undefined
    return `GET /health answered ${response.status}: ${body.slice(0, 200)}`
  } catch (error) {
    return error instanceof Error ? `${error.name}: ${error.message}` : String(error)
  }
}

export interface ZipkinStarted {
  readonly state: ZipkinState
  readonly timings: { readonly jarMs: number; readonly jarDownloaded: boolean; readonly startMs: number }
}

/**
 * Starts Zipkin detached (it outlives `up`) on a fresh data folder and waits until `/health` says UP.
 * `onSpawned` runs as soon as the JVM exists, so the caller records it before the wait. On failure the
 * JVM is stopped and its folder removed.
 */
export const startZipkin = async (onSpawned: (state: ZipkinState) => void): Promise<ZipkinStarted> => {
  const version = zipkinVersion()
  const port = zipkinPort()
  await requireFreePorts(host, [port], "stop it or set DEXMON_ZIPKIN_PORT")

  const jarStarted = performance.now()
  const { jar, downloaded } = await ensureZipkinJar(version)
  const jarMs = performance.now() - jarStarted

  const startStarted = performance.now()
  mkdirSync(zipkinDirectory, { recursive: true })
  const dataDirectory = mkdtempSync(join(zipkinDirectory, "data-"))
  mkdirSync(logsDirectory(dataDirectory))
  const { state } = await startDetachedJvm({
    name: `Zipkin ${version}`,
    java: javaCommand(),
    args: jvmArguments(jar, dataDirectory, port),
    dataDirectory,
    logsDirectory: logsDirectory(dataDirectory),
    serverLog: "zipkin.log",
    pidFile,
    readyTimeoutMs,
    stateOf: (pid): ZipkinState => ({ pid, version, host, port, dataDirectory, startedAt: new Date().toISOString() }),
    addressOf: zipkinUrl,
    onSpawned,
    waitUntilReady: async (state, timeoutMs, stillRunning) => {
      const deadline = Date.now() + timeoutMs
      let problem: string | undefined = "not polled yet"
      while (Date.now() < deadline && stillRunning()) {
        problem = await zipkinProblem(state)
        if (problem === undefined) return { ready: true, answer: undefined }
        await sleep(200)
      }
      return { ready: false, problem }
    },
    stop: stopZipkin
  })
  return { state, timings: { jarMs, jarDownloaded: downloaded, startMs: performance.now() - startStarted } }
}

/** Polls `/health` for up to `timeoutMs`: whether it said UP (a reused server gets this long to answer). */
export const waitUntilZipkinAnswers = async (
  state: ZipkinState,
  timeoutMs: number,
  stillRunning: () => boolean = () => true
): Promise<boolean> => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline && stillRunning()) {
    if ((await zipkinProblem(state)) === undefined) return true
    await sleep(200)
  }
  return false
}

/** Stops the JVM (SIGTERM, SIGKILL after 30 s) if it still runs, then removes its data folder (the log) and the pid file. */
export const stopZipkin = (state: ZipkinState): Promise<void> =>
  stopJvm(isZipkinRunning(state), state.pid, state.dataDirectory, pidFile)
