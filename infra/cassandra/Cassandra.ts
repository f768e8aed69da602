// Apache Cassandra for tests: jars from Maven Central (no Docker, no download site here),
// one node on 127.0.0.1 started straight from its main class (the tarball's bin/cassandra
// and conf/ are not on Maven Central), data in a fresh folder per start. See
// /work/shared/infra.md for the facts this relies on.
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { pathToFileURL } from "node:url"
import { Client, policies } from "cassandra-driver"
import { javaCommand, requireFreePorts, startDetachedJvm, stopJvm } from "../Jvm.ts"
import { fetchJars, runtimePom } from "../Maven.ts"
import { acceptsTcp, commandLine, isAlive } from "../Processes.ts"
import { type CassandraState, infraDirectory } from "../State.ts"

/** Newest 5.0.x on Maven Central when this was written (5.0.0 ... 5.0.9); override with DEXMON_CASSANDRA_VERSION. */
export const defaultCassandraVersion = "5.0.9"
/** Pinned because Maven 3.8's default (2.8, from 2013) is what it would pick otherwise. */
const defaultNativePort = 19042
/** The storage (gossip) port sits this far above the native port: 19070 by default, and two harnesses with different native ports do not collide. */
const storagePortOffset = 28
const host = "127.0.0.1"
/** SimpleSnitch puts every node in this data centre; the drivers' default load-balancing policies need its name. */
export const cassandraDataCenter = "datacenter1"
const readyTimeoutMs = 180_000

const cassandraDirectory = join(infraDirectory, "cassandra")
const pidFile = join(cassandraDirectory, "cassandra.pid")
const logbackConfiguration = join(import.meta.dirname, "logback.xml")

export const cassandraVersion = (): string => process.env.DEXMON_CASSANDRA_VERSION ?? defaultCassandraVersion

/** Native (CQL) port from DEXMON_CASSANDRA_PORT (default 19042); the storage port is derived from it. */
export const cassandraPorts = (): { readonly nativePort: number; readonly storagePort: number } => {
  const configured = process.env.DEXMON_CASSANDRA_PORT
  const nativePort = configured === undefined || configured === "" ? defaultNativePort : Number(configured)
  if (!Number.isInteger(nativePort) || nativePort <= 0 || nativePort + storagePortOffset >= 65535) {
    throw new Error(
      `DEXMON_CASSANDRA_PORT must be a port number below ${65535 - storagePortOffset}, got "${configured}"`
    )
  }
  return { nativePort, storagePort: nativePort + storagePortOffset }
}

export const cassandraContactPoints = (state: CassandraState): string => `${state.host}:${state.nativePort}`

export const cassandraEnvironment = (contactPoints: string, localDataCenter: string): Record<string, string> => ({
  CASSANDRA_CONTACT_POINTS: contactPoints,
  CASSANDRA_LOCAL_DC: localDataCenter
})

// ---------------------------------------------------------------------------------------------
// Jars

const pom = (version: string): string =>
  runtimePom({
    generatedBy: "infra/cassandra/Cassandra.ts",
    purpose: `only used to copy Cassandra ${version}'s runtime jars into lib/.`,
    artifactId: "cassandra-runtime",
    version,
    body: `  <dependencies>
    <!-- Brings its own logging (SLF4J and Logback), so unlike Kafka's POM nothing is added here. -->
    <dependency>
      <groupId>org.apache.cassandra</groupId>
      <artifactId>cassandra-all</artifactId>
      <version>${version}</version>
    </dependency>
  </dependencies>`
  })

/**
 * The folder holding Cassandra `version`'s jars, copied there by Maven on first use. Its own
 * folder, not Kafka's: Cassandra logs with Logback, Kafka with Log4j, and both bind SLF4J.
 * The copy goes to lib.partial and is renamed when complete, so an interrupted download is redone.
 */
export const ensureCassandraJars = (
  version: string
): Promise<{ readonly libDirectory: string; readonly downloaded: boolean }> =>
  fetchJars({ name: "Cassandra", version, versionDirectory: join(cassandraDirectory, version), pom: pom(version) })

// ---------------------------------------------------------------------------------------------
// Configuration

const configurationPath = (dataDirectory: string) => join(dataDirectory, "cassandra.yaml")
const logsDirectory = (dataDirectory: string) => join(dataDirectory, "logs")
/** The -Dcassandra.config argument; also how `isRunning` recognises the JVM started for a data folder. */
const configurationArgument = (dataDirectory: string) =>
  `-Dcassandra.config=${pathToFileURL(configurationPath(dataDirectory)).href}`

// JSON strings are valid YAML double-quoted scalars: paths with any character stay one value.
const yamlString = (value: string): string => JSON.stringify(value)

/**
 * No cassandra.yaml ships in cassandra-all, and Cassandra fails on unknown keys, so this is
 * a minimal one: the keys without a default plus the addresses, ports and folders.
 */
const cassandraYaml = (dataDirectory: string, nativePort: number, storagePort: number): string =>
  [
    "# Generated by infra/cassandra/Cassandra.ts: a single node on 127.0.0.1 for tests.",
    "cluster_name: dexmon-test",
    // One token: a single node owns the whole ring anyway, and fewer tokens start faster.
    "num_tokens: 1",
    "partitioner: org.apache.cassandra.dht.Murmur3Partitioner",
    // SimpleSnitch: data centre "datacenter1", rack "rack1", with no properties file to read.
    "endpoint_snitch: SimpleSnitch",
    // A write is acknowledged only once it is in the fsynced commit log: with one node and no
    // replicas, the periodic default would lose the last seconds of acknowledged alerts to a crash.
    "commitlog_sync: group",
    "commitlog_sync_group_window: 10ms",
    "seed_provider:",
    "  - class_name: org.apache.cassandra.locator.SimpleSeedProvider",
    "    parameters:",
    // Its own storage address: a seed skips bootstrap (and its 30 s ring delay).
    `      - seeds: "${host}:${storagePort}"`,
    `listen_address: ${host}`,
    `rpc_address: ${host}`,
    `storage_port: ${storagePort}`,
    `native_transport_port: ${nativePort}`,
    "data_file_directories:",
    `  - ${yamlString(join(dataDirectory, "data"))}`,
    `commitlog_directory: ${yamlString(join(dataDirectory, "commitlog"))}`,
    `hints_directory: ${yamlString(join(dataDirectory, "hints"))}`,
    `saved_caches_directory: ${yamlString(join(dataDirectory, "saved_caches"))}`,
    // No snapshot before every TRUNCATE and DROP: tests do many, and each would flush and hard-link first.
    "auto_snapshot: false",
    ""
  ].join("\n")

/**
 * Cassandra 5.0 supports Java 11 and 17 only (on 24+, seen with 25, it dies at start-up: "Setting a system-wide
 * Policy object is not supported"), so DEXMON_CASSANDRA_JAVA_HOME can name a JDK for it alone
 * when JAVA_HOME (or the `java` on PATH) is a newer one.
 */
const cassandraJava = (): string => javaCommand(process.env.DEXMON_CASSANDRA_JAVA_HOME || process.env.JAVA_HOME)

/**
 * What Cassandra's bin/cassandra would pass on Java 17 and what it needs here. The module
 * flags are the JPMS list of Cassandra 5.0's conf/jvm17-server.options: Cassandra reaches
 * into JDK internals (Unsafe, direct buffers, file channels, JMX and RMI), and without
 * them Java 17 refuses the reflective access at start-up.
 */
const jvmArguments = (libDirectory: string, dataDirectory: string): ReadonlyArray<string> => [
  // 1 GB is plenty for tests; equal sizes, as Cassandra recommends, so the heap never resizes.
  "-Xms1g",
  "-Xmx1g",
  // Java 17's default on a server-class machine, named because Cassandra 5.0 is tuned for it
  // (the rest of jvm17-server.options' G1 tuning targets production-sized heaps).
  "-XX:+UseG1GC",
  // Cassandra warns at start-up without one of the OutOfMemoryError flags: a JVM that carries on after
  // one may corrupt data. Exiting also makes the harness see the server as gone instead of hung.
  "-XX:+ExitOnOutOfMemoryError",
  "-Djava.awt.headless=true",
  "-Djava.net.preferIPv4Stack=true",
  "-Djdk.attach.allowAttachSelf=true",
  "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED",
  "--add-exports=java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
  "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
  "--add-exports=java.rmi/sun.rmi.server=ALL-UNNAMED",
  "--add-exports=java.sql/java.sql=ALL-UNNAMED",
  "--add-exports=java.base/java.lang.ref=ALL-UNNAMED",
  "--add-exports=jdk.unsupported/sun.misc=ALL-UNNAMED",
  "--add-exports=jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
  "--add-exports=jdk.attach/sun.tools.attach=ALL-UNNAMED",
  "--add-opens=java.base/java.lang.module=ALL-UNNAMED",
  "--add-opens=java.base/jdk.internal.loader=ALL-UNNAMED",
  "--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED",
  "--add-opens=java.base/jdk.internal.reflect=ALL-UNNAMED",
  "--add-opens=java.base/jdk.internal.math=ALL-UNNAMED",
  "--add-opens=java.base/jdk.internal.module=ALL-UNNAMED",
  "--add-opens=java.base/jdk.internal.util.jar=ALL-UNNAMED",
  "--add-opens=jdk.management/com.sun.management.internal=ALL-UNNAMED",
  "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
  "--add-opens=java.base/java.io=ALL-UNNAMED",
  "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
  "--add-opens=jdk.compiler/com.sun.tools.javac=ALL-UNNAMED",
  "--add-opens=java.base/java.lang=ALL-UNNAMED",
  "--add-opens=java.base/java.util=ALL-UNNAMED",
  "--add-opens=java.base/java.nio=ALL-UNNAMED",
  // Netty options of the same file: direct buffers through Unsafe, and the allocator defaults of Netty < 4.1.75.
  "-Dio.netty.tryReflectionSetAccessible=true",
  "-Dio.netty.allocator.useCacheForAllThreads=true",
  "-Dio.netty.allocator.maxOrder=11",
  configurationArgument(dataDirectory),
  `-Dcassandra.storagedir=${dataDirectory}`,
  `-Dcassandra.logdir=${logsDirectory(dataDirectory)}`,
  `-Dlogback.configurationFile=${logbackConfiguration}`,
  // Without it the daemon closes stdout and stderr, and a crash before Logback is up says nothing.
  "-Dcassandra-foreground=yes",
  // A single node has nobody to gossip with; the default waits for gossip to settle first.
  "-Dcassandra.skip_wait_for_gossip_to_settle=0",
  // Nor anybody to tell that it shuts down: the default waits 2 s after announcing it, which `down` would pay.
  "-Dcassandra.shutdown_announce_in_ms=0",
  "-cp",
  join(libDirectory, "*"),
  "org.apache.cassandra.service.CassandraDaemon"
]

// ---------------------------------------------------------------------------------------------
// Readiness

export interface CassandraAnswer {
  readonly releaseVersion: string
  readonly dataCenter: string
}

/**
 * One query (`system.local`) against `contactPoints` ("host:port,..."), with short timeouts,
 * or undefined when it fails. Round-robin load balancing, because the default policy needs
 * the local data centre, which is what this asks an unknown cluster for.
 */
export const cassandraAnswers = async (contactPoints: string): Promise<CassandraAnswer | undefined> => {
  const client = new Client({
    contactPoints: contactPoints.split(","),
    policies: { loadBalancing: new policies.loadBalancing.RoundRobinPolicy() },
    socketOptions: { connectTimeout: 1_000, readTimeout: 3_000 },
    // The schema and token metadata is not needed for one query, and fetching it is slow.
    isMetadataSyncEnabled: false
  })
  try {
    await client.connect()
    const row = (await client.execute("SELECT release_version, data_center FROM system.local")).first()
    return { releaseVersion: String(row.get("release_version")), dataCenter: String(row.get("data_center")) }
  } catch {
    return undefined
  } finally {
    await client.shutdown().catch(() => undefined)
  }
}

/** Polls until a query succeeds; undefined on timeout or as soon as `stillRunning` says the server died. */
export const waitUntilCassandraAnswers = async (
  contactPoints: string,
  timeoutMs: number,
  stillRunning: () => boolean = () => true
): Promise<CassandraAnswer | undefined> => {
  const deadline = Date.now() + timeoutMs
  const [firstHost = host, firstPort = "9042"] = contactPoints.split(",")[0]?.split(":") ?? []
  while (Date.now() < deadline && stillRunning()) {
    // A cheap TCP probe first: the native port opens last in start-up, and the driver is slow to give up on a closed one.
    if (await acceptsTcp(firstHost, Number(firstPort), 500)) {
      const answer = await cassandraAnswers(contactPoints)
      if (answer !== undefined) return answer
    }
    await sleep(250)
  }
  return undefined
}

// ---------------------------------------------------------------------------------------------
// Start and stop

/** True when `state.pid` is still the Cassandra JVM started for `state` (and not a reused pid). */
export const isCassandraRunning = (state: CassandraState): boolean =>
  isAlive(state.pid) && commandLine(state.pid).includes(configurationArgument(state.dataDirectory))

export interface CassandraStarted {
  readonly state: CassandraState
  readonly releaseVersion: string
  readonly timings: {
    readonly jarsMs: number
    readonly jarsDownloaded: boolean
    readonly startMs: number
  }
}

/**
 * Starts a fresh Cassandra and resolves once it answers a query. `onSpawned` runs as soon as
 * the JVM exists, so that the caller records it before the wait: if this process is interrupted
 * during start-up, `down` still finds the JVM. On failure the JVM is stopped and its data removed.
 */
export const startCassandra = async (onSpawned: (state: CassandraState) => void): Promise<CassandraStarted> => {
  const version = cassandraVersion()
  const { nativePort, storagePort } = cassandraPorts()
  await requireFreePorts(host, [nativePort, storagePort], "stop it or set DEXMON_CASSANDRA_PORT")

  const jarsStarted = performance.now()
  const { libDirectory, downloaded } = await ensureCassandraJars(version)
  const jarsMs = performance.now() - jarsStarted

  const startStarted = performance.now()
  mkdirSync(cassandraDirectory, { recursive: true })
  const dataDirectory = mkdtempSync(join(cassandraDirectory, "data-"))
  mkdirSync(logsDirectory(dataDirectory))
  writeFileSync(configurationPath(dataDirectory), cassandraYaml(dataDirectory, nativePort, storagePort))
  const { state, answer } = await spawnOn(libDirectory, dataDirectory, version, nativePort, storagePort, onSpawned)
  return {
    state,
    releaseVersion: answer.releaseVersion,
    timings: { jarsMs, jarsDownloaded: downloaded, startMs: performance.now() - startStarted }
  }
}

/**
 * Starts the JVM on a data folder (fresh, or kept from a stopped node) and waits until it
 * answers a query; on failure it stops the JVM, removes the data and throws with the logs.
 */
const spawnOn = async (
  libDirectory: string,
  dataDirectory: string,
  version: string,
  nativePort: number,
  storagePort: number,
  onSpawned: (state: CassandraState) => void
): Promise<{ readonly state: CassandraState; readonly answer: CassandraAnswer }> =>
  startDetachedJvm({
    name: `Cassandra ${version}`,
    java: cassandraJava(),
    args: jvmArguments(libDirectory, dataDirectory),
    dataDirectory,
    logsDirectory: logsDirectory(dataDirectory),
    serverLog: "system.log",
    pidFile,
    readyTimeoutMs,
    stateOf: (pid): CassandraState => ({
      pid,
      version,
      host,
      nativePort,
      storagePort,
      dataDirectory,
      startedAt: new Date().toISOString()
    }),
    addressOf: cassandraContactPoints,
    onSpawned,
    waitUntilReady: async (state, timeoutMs, stillRunning) => {
      const answer = await waitUntilCassandraAnswers(cassandraContactPoints(state), timeoutMs, stillRunning)
      return answer === undefined ? { ready: false } : { ready: true, answer }
    },
    stop: stopCassandra
  })

/**
 * An outage, for tests: kills the node (SIGKILL, as a crash would) but keeps its data, so
 * `restartCassandra` brings the same node back with everything it had acknowledged.
 */
export const killCassandraKeepingData = async (state: CassandraState): Promise<void> => {
  if (isCassandraRunning(state)) {
    process.kill(state.pid, "SIGKILL")
    while (isAlive(state.pid)) await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** Starts the node again on the data folder of a killed one; resolves once it answers. */
export const restartCassandra = async (
  previous: CassandraState,
  onSpawned: (state: CassandraState) => void
): Promise<CassandraState> => {
  const { libDirectory } = await ensureCassandraJars(previous.version)
  const { state } = await spawnOn(
    libDirectory,
    previous.dataDirectory,
    previous.version,
    previous.nativePort,
    previous.storagePort,
    onSpawned
  )
  return state
}

/** Stops the JVM (SIGTERM, SIGKILL after 30 s) if it still runs, then removes its data folder and the pid file. */
export const stopCassandra = (state: CassandraState): Promise<void> =>
  stopJvm(isCassandraRunning(state), state.pid, state.dataDirectory, pidFile)
