// S3Proxy for tests: an S3-compatible server from Maven Central (no Docker, no download site
// here), one JVM on 127.0.0.1 storing objects as plain files in a data folder (so they survive
// a restart of the JVM), with one bucket created at start-up. See /work/shared/infra.md for the
// facts this relies on.
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { CreateBucketCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3"
import { javaCommand, requireFreePorts, startDetachedJvm, stopJvm } from "../Jvm.ts"
import { fetchJars, runtimePom } from "../Maven.ts"
import { acceptsTcp, commandLine, isAlive } from "../Processes.ts"
import { infraDirectory, type S3State } from "../State.ts"

/**
 * Newest release on Maven Central when this was written (2.9.0 ... 4.1.0 resolve; all from 2.9.0 on
 * are built for Java 17); override with DEXMON_S3PROXY_VERSION.
 */
export const defaultS3ProxyVersion = "4.1.0"
/** Pinned because Maven 3.8's default (2.8, from 2013) is what it would pick otherwise. */
const defaultPort = 19900
const host = "127.0.0.1"
const readyTimeoutMs = 120_000

/** What the tests get: one bucket, and fixed credentials that are no secret (the server only listens on loopback). */
const defaultBucket = "dexmon-archive"
const defaultRegion = "us-east-1"
const testIdentity = "dexmon"
const testCredential = "dexmon-secret"

const s3Directory = join(infraDirectory, "s3")
const pidFile = join(s3Directory, "s3proxy.pid")
const logbackConfiguration = join(import.meta.dirname, "logback.xml")

export const s3ProxyVersion = (): string => process.env.DEXMON_S3PROXY_VERSION ?? defaultS3ProxyVersion

/** Port from DEXMON_S3_PORT (default 19900). */
export const s3Port = (): number => {
  const configured = process.env.DEXMON_S3_PORT
  const port = configured === undefined || configured === "" ? defaultPort : Number(configured)
  if (!Number.isInteger(port) || port <= 0 || port >= 65536) {
    throw new Error(`DEXMON_S3_PORT must be a port number below 65536, got "${configured}"`)
  }
  return port
}

export const s3Endpoint = (state: S3State): string => `http://${state.host}:${state.port}`

/** Where a client finds the store and how it signs its requests. */
export interface S3Settings {
  readonly endpoint: string
  readonly region: string
  readonly bucket: string
  readonly accessKeyId: string
  readonly secretAccessKey: string
}

/** The settings of the server this harness starts. */
export const harnessS3Settings = (state: S3State): S3Settings => ({
  endpoint: s3Endpoint(state),
  region: defaultRegion,
  bucket: defaultBucket,
  accessKeyId: testIdentity,
  secretAccessKey: testCredential
})

/**
 * The settings of a server named by S3_ENDPOINT: the bucket, region and keys come from the
 * environment too, and default to this harness's (another harness's S3Proxy needs no more than the endpoint).
 */
export const externalS3Settings = (endpoint: string): S3Settings => ({
  endpoint,
  region: process.env.S3_REGION || defaultRegion,
  bucket: process.env.S3_BUCKET || defaultBucket,
  accessKeyId: process.env.AWS_ACCESS_KEY_ID || testIdentity,
  secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY || testCredential
})

export const s3Environment = (settings: S3Settings): Record<string, string> => ({
  S3_ENDPOINT: settings.endpoint,
  S3_BUCKET: settings.bucket,
  S3_REGION: settings.region,
  AWS_ACCESS_KEY_ID: settings.accessKeyId,
  AWS_SECRET_ACCESS_KEY: settings.secretAccessKey,
  // S3Proxy serves buckets as a path (http://host/bucket/key), not as a host name (http://bucket.host/key).
  S3_FORCE_PATH_STYLE: "true"
})

// ---------------------------------------------------------------------------------------------
// Jars

const pom = (version: string): string =>
  runtimePom({
    generatedBy: "infra/s3/S3.ts",
    purpose: `only used to copy S3Proxy ${version}'s runtime jars into lib/.`,
    artifactId: "s3proxy-runtime",
    version,
    body: `  <dependencyManagement>
    <dependencies>
      <!--
        S3Proxy's own dependencyManagement (its BOMs: Jackson 3, OpenTelemetry, AWS SDK), which Maven
        3 does not apply to a dependency's transitive jars. Without it jackson-annotations resolves to
        2.18 (nearest, through the Azure SDK) instead of the 2.22 that Jackson 3's databind needs, and
        start-up fails with NoClassDefFoundError: com/fasterxml/jackson/annotation/JsonSerializeAs.
        Imported, the jars are the set S3Proxy's own build (and its jar-with-dependencies) uses.
      -->
      <dependency>
        <groupId>org.gaul</groupId>
        <artifactId>s3proxy</artifactId>
        <version>${version}</version>
        <type>pom</type>
        <scope>import</scope>
      </dependency>
    </dependencies>
  </dependencyManagement>
  <dependencies>
    <!--
      The plain jar, not the jar-with-dependencies of the GitHub releases (that one is not on Maven
      Central). It has Jetty shaded in (org.gaul.shaded.org.eclipse.jetty); everything else, Logback
      included, comes from its POM.
    -->
    <dependency>
      <groupId>org.gaul</groupId>
      <artifactId>s3proxy</artifactId>
      <version>${version}</version>
    </dependency>
  </dependencies>`
  })

/**
 * The folder holding S3Proxy `version`'s jars, copied there by Maven on first use. Its own
 * folder, not Kafka's or Cassandra's: each server brings its own logging stack and library versions.
 * The copy goes to lib.partial and is renamed when complete, so an interrupted download is redone.
 */
export const ensureS3ProxyJars = (
  version: string
): Promise<{ readonly libDirectory: string; readonly downloaded: boolean }> =>
  fetchJars({ name: "S3Proxy", version, versionDirectory: join(s3Directory, version), pom: pom(version) })

// ---------------------------------------------------------------------------------------------
// Configuration

const propertiesPath = (dataDirectory: string) => join(dataDirectory, "s3proxy.properties")
const logsDirectory = (dataDirectory: string) => join(dataDirectory, "logs")
const blobsDirectory = (dataDirectory: string) => join(dataDirectory, "blobs")

// In a .properties value a backslash starts an escape sequence, so one in a path must be doubled to stay itself.
const propertyValue = (value: string): string => value.replaceAll("\\", "\\\\")

const s3ProxyProperties = (dataDirectory: string, port: number): string =>
  [
    "# Generated by infra/s3/S3.ts: S3Proxy on 127.0.0.1 for tests, objects stored as files.",
    `s3proxy.endpoint=http://${host}:${port}`,
    // Both signature versions: @aws-sdk/client-s3 and the aws CLI sign with V4, older tools with V2.
    "s3proxy.authorization=aws-v2-or-v4",
    `s3proxy.identity=${testIdentity}`,
    `s3proxy.credential=${testCredential}`,
    // Files in the data folder rather than transient-nio2's memory: objects survive a restart of the JVM.
    "jclouds.provider=filesystem-nio2",
    `jclouds.filesystem.basedir=${propertyValue(blobsDirectory(dataDirectory))}`,
    ""
  ].join("\n")

const jvmArguments = (libDirectory: string, dataDirectory: string): ReadonlyArray<string> => [
  // Tests store small objects; S3Proxy streams bodies rather than holding them.
  "-Xms64m",
  "-Xmx512m",
  // A JVM that carries on after an OutOfMemoryError may answer with half-written objects; exiting
  // also makes the harness see the server as gone instead of hung.
  "-XX:+ExitOnOutOfMemoryError",
  "-Djava.awt.headless=true",
  `-Dlogback.configurationFile=${logbackConfiguration}`,
  `-Ds3proxy.logdir=${logsDirectory(dataDirectory)}`,
  "-cp",
  join(libDirectory, "*"),
  "org.gaul.s3proxy.Main",
  "--properties",
  propertiesPath(dataDirectory)
]

// ---------------------------------------------------------------------------------------------
// Readiness

/** A client that fails fast: one attempt, short timeouts. The caller destroys it. */
const quickClient = (settings: S3Settings): S3Client =>
  new S3Client({
    endpoint: settings.endpoint,
    region: settings.region,
    credentials: { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey },
    forcePathStyle: true,
    maxAttempts: 1,
    requestHandler: { connectionTimeout: 1_000, requestTimeout: 3_000 }
  })

const describe = (error: unknown): string =>
  error instanceof Error ? `${error.name}: ${error.message || "(no message)"}` : String(error)

/** Lists the bucket (at most one key): undefined when that works, else why not. Changes nothing. */
export const s3Problem = async (settings: S3Settings): Promise<string | undefined> => {
  const client = quickClient(settings)
  try {
    await client.send(new ListObjectsV2Command({ Bucket: settings.bucket, MaxKeys: 1 }))
    return undefined
  } catch (error) {
    return describe(error)
  } finally {
    client.destroy()
  }
}

/**
 * Creates the bucket unless it exists, then lists it: undefined when both work, else why not.
 * An S3 call, not just a TCP probe: Jetty accepts connections before the blob store behind it is ready.
 */
const bucketProblem = async (settings: S3Settings): Promise<string | undefined> => {
  const client = quickClient(settings)
  try {
    await client.send(new CreateBucketCommand({ Bucket: settings.bucket }))
  } catch (error) {
    // S3Proxy answers a second create with BucketAlreadyOwnedByYou; another owner's bucket fails the listing below.
    const name = error instanceof Error ? error.name : ""
    if (name !== "BucketAlreadyOwnedByYou" && name !== "BucketAlreadyExists") return describe(error)
  } finally {
    client.destroy()
  }
  return s3Problem(settings)
}

/**
 * Polls until the bucket exists and can be listed: undefined then, else the last problem, on
 * timeout or as soon as `stillRunning` says the server died.
 */
export const waitUntilBucketAnswers = async (
  settings: S3Settings,
  timeoutMs: number,
  stillRunning: () => boolean = () => true
): Promise<string | undefined> => {
  const deadline = Date.now() + timeoutMs
  const url = new URL(settings.endpoint)
  const port = Number(url.port || (url.protocol === "https:" ? 443 : 80))
  let problem = `nothing accepts connections on ${url.host}`
  while (Date.now() < deadline && stillRunning()) {
    // A cheap TCP probe first: the SDK takes its full connection timeout to give up on a closed port.
    if (await acceptsTcp(url.hostname, port, 500)) {
      const current = await bucketProblem(settings)
      if (current === undefined) return undefined
      problem = current
    }
    await sleep(200)
  }
  return problem
}

// ---------------------------------------------------------------------------------------------
// Start and stop

/** True when `state.pid` is still the S3Proxy JVM started for `state` (and not a reused pid). */
export const isS3ProxyRunning = (state: S3State): boolean =>
  isAlive(state.pid) && commandLine(state.pid).includes(propertiesPath(state.dataDirectory))

/** Whether the data folder of a stopped server is still there to start it again on. */
export const hasS3ProxyData = (state: S3State): boolean => existsSync(propertiesPath(state.dataDirectory))

export interface S3ProxyStarted {
  readonly state: S3State
  readonly timings: {
    readonly jarsMs: number
    readonly jarsDownloaded: boolean
    readonly startMs: number
  }
}

/**
 * Starts a fresh S3Proxy and resolves once its bucket can be listed. `onSpawned` runs as soon
 * as the JVM exists, so that the caller records it before the wait: if this process is interrupted
 * during start-up, `down` still finds the JVM. On failure the JVM is stopped and its data removed.
 */
export const startS3Proxy = async (onSpawned: (state: S3State) => void): Promise<S3ProxyStarted> => {
  const version = s3ProxyVersion()
  const port = s3Port()
  await requireFreePorts(host, [port], "stop it or set DEXMON_S3_PORT")

  const jarsStarted = performance.now()
  const { libDirectory, downloaded } = await ensureS3ProxyJars(version)
  const jarsMs = performance.now() - jarsStarted

  const startStarted = performance.now()
  mkdirSync(s3Directory, { recursive: true })
  const dataDirectory = mkdtempSync(join(s3Directory, "data-"))
  mkdirSync(logsDirectory(dataDirectory))
  mkdirSync(blobsDirectory(dataDirectory))
  writeFileSync(propertiesPath(dataDirectory), s3ProxyProperties(dataDirectory, port))
  const state = await spawnOn(libDirectory, dataDirectory, version, port, onSpawned)
  return { state, timings: { jarsMs, jarsDownloaded: downloaded, startMs: performance.now() - startStarted } }
}

/**
 * Starts the JVM again on the data folder of one that died (a crash, a reboot, a kill), with the
 * same version and port, so the objects stored before are there again. Resolves once the bucket answers.
 */
export const restartS3Proxy = async (
  previous: S3State,
  onSpawned: (state: S3State) => void
): Promise<S3ProxyStarted> => {
  await requireFreePorts(host, [previous.port], "stop it")
  const jarsStarted = performance.now()
  const { libDirectory, downloaded } = await ensureS3ProxyJars(previous.version)
  const jarsMs = performance.now() - jarsStarted
  const startStarted = performance.now()
  const state = await spawnOn(libDirectory, previous.dataDirectory, previous.version, previous.port, onSpawned)
  return { state, timings: { jarsMs, jarsDownloaded: downloaded, startMs: performance.now() - startStarted } }
}

/**
 * Starts the JVM on a data folder (fresh, or kept from a stopped server) and waits until the bucket
 * can be listed; on failure it stops the JVM, removes the data and throws with the logs.
 */
const spawnOn = async (
  libDirectory: string,
  dataDirectory: string,
  version: string,
  port: number,
  onSpawned: (state: S3State) => void
): Promise<S3State> => {
  const { state } = await startDetachedJvm({
    name: `S3Proxy ${version}`,
    java: javaCommand(),
    args: jvmArguments(libDirectory, dataDirectory),
    dataDirectory,
    logsDirectory: logsDirectory(dataDirectory),
    serverLog: "s3proxy.log",
    pidFile,
    readyTimeoutMs,
    stateOf: (pid): S3State => ({ pid, version, host, port, dataDirectory, startedAt: new Date().toISOString() }),
    addressOf: s3Endpoint,
    onSpawned,
    waitUntilReady: async (state, timeoutMs, stillRunning) => {
      const problem = await waitUntilBucketAnswers(harnessS3Settings(state), timeoutMs, stillRunning)
      return problem === undefined ? { ready: true, answer: undefined } : { ready: false, problem }
    },
    stop: stopS3Proxy
  })
  return state
}

/** Stops the JVM (SIGTERM, SIGKILL after 30 s) if it still runs, then removes its data folder and the pid file. */
export const stopS3Proxy = (state: S3State): Promise<void> =>
  stopJvm(isS3ProxyRunning(state), state.pid, state.dataDirectory, pidFile)
