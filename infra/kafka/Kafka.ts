// Apache Kafka for tests: jars from Maven Central (no Docker, no download site here),
// one KRaft node that is broker and controller at once, on 127.0.0.1, data in a
// fresh folder per start. See /work/shared/infra.md for the facts this relies on.
// Besides the harness's shared broker, a test can start a private one (its own ports and
// folder) that it may SIGKILL and start again on the same data without disturbing anyone.
import { randomBytes } from "node:crypto"
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { dirname, join } from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { Kafka, logLevel } from "kafkajs"
import { javaCommand, requireFreePorts, startDetachedJvm, stopJvm } from "../Jvm.ts"
import { fetchJars, runtimePom } from "../Maven.ts"
import { acceptsTcp, commandLine, isAlive, log, runCommand, tailOfText } from "../Processes.ts"
import { infraDirectory, type KafkaState } from "../State.ts"

/** Newest 4.x on Maven Central when this was written (4.0.0 ... 4.4.0 all resolve); override with DEXMON_KAFKA_VERSION. */
export const defaultKafkaVersion = "4.4.0"
/** The Log4j that kafka-server 4.4.0 itself depends on; all three Log4j jars must share one version. */
const log4jVersion = "2.25.5"
/** Pinned because Maven 3.8's default (2.8, from 2013) is what it would pick otherwise. */
const defaultBrokerPort = 19092
const host = "127.0.0.1"
const readyTimeoutMs = 120_000

const kafkaDirectory = join(infraDirectory, "kafka")
const pidFile = join(kafkaDirectory, "kafka.pid")
/** Holds one data folder per private broker (see `startPrivateKafka`), each with its own pid file. */
const privateDirectory = join(kafkaDirectory, "private")
const log4jConfiguration = join(import.meta.dirname, "log4j2.xml")

export const kafkaVersion = (): string => process.env.DEXMON_KAFKA_VERSION ?? defaultKafkaVersion

/** Broker port from DEXMON_KAFKA_PORT (default 19092); the controller listens on the next port. */
export const kafkaPorts = (): { readonly brokerPort: number; readonly controllerPort: number } => {
  const configured = process.env.DEXMON_KAFKA_PORT
  const brokerPort = configured === undefined || configured === "" ? defaultBrokerPort : Number(configured)
  if (!Number.isInteger(brokerPort) || brokerPort <= 0 || brokerPort >= 65535) {
    throw new Error(`DEXMON_KAFKA_PORT must be a port number below 65535, got "${configured}"`)
  }
  return { brokerPort, controllerPort: brokerPort + 1 }
}

export const kafkaBrokers = (state: KafkaState): string => `${state.host}:${state.brokerPort}`

export const kafkaEnvironment = (brokers: string): Record<string, string> => ({ KAFKA_BROKERS: brokers })

// ---------------------------------------------------------------------------------------------
// Jars

const pom = (version: string): string =>
  runtimePom({
    generatedBy: "infra/kafka/Kafka.ts",
    purpose: `only used to copy Kafka ${version}'s runtime jars into lib/.`,
    artifactId: "kafka-runtime",
    version,
    body: `  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>${version}</version>
    </dependency>
    <!-- Kafka's POM has slf4j-api 1.7 but no binding: without this, SLF4J falls back to NOP and Kafka logs nothing. -->
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>${log4jVersion}</version>
    </dependency>
    <!-- Transitive from kafka-server since 4.1, absent in 4.0; declared so that all Log4j jars share one version. -->
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-api</artifactId>
      <version>${log4jVersion}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>${log4jVersion}</version>
    </dependency>
  </dependencies>`
  })

/**
 * The folder holding Kafka `version`'s jars, copied there by Maven on first use. The copy
 * goes to lib.partial and is renamed when complete, so an interrupted download is redone.
 */
export const ensureKafkaJars = (
  version: string
): Promise<{ readonly libDirectory: string; readonly downloaded: boolean }> =>
  fetchJars({ name: "Kafka", version, versionDirectory: join(kafkaDirectory, version), pom: pom(version) })

// ---------------------------------------------------------------------------------------------
// Configuration and storage

const serverPropertiesPath = (dataDirectory: string) => join(dataDirectory, "server.properties")
const logsDirectory = (dataDirectory: string) => join(dataDirectory, "logs")

/**
 * Listeners a private broker has besides PLAINTEXT (which the broker itself, the readiness probe and
 * the test's own admin keep using): SASL_PLAINTEXT, and SASL_SSL when a certificate is given. SCRAM
 * users are written into the metadata when the storage is formatted (`format --add-scram`), so they
 * exist before the first client connects.
 */
export interface KafkaSecurityOptions {
  readonly scramUsers: ReadonlyArray<{ readonly username: string; readonly password: string }>
  /** PEM files of the broker's certificate and its unencrypted PKCS#8 key, for a SASL_SSL listener. */
  readonly tls?: { readonly certificateFile: string; readonly keyFile: string } | undefined
}

interface SecureListeners {
  readonly saslPort: number
  readonly saslSslPort?: number | undefined
  readonly keystoreFile?: string | undefined
}

const keystorePath = (dataDirectory: string) => join(dataDirectory, "keystore.pem")

const serverProperties = (
  dataDirectory: string,
  brokerPort: number,
  controllerPort: number,
  secure?: SecureListeners
): string => {
  const extra: Array<[name: string, port: number]> = []
  if (secure !== undefined) {
    extra.push(["SASL_PLAINTEXT", secure.saslPort])
    if (secure.saslSslPort !== undefined) extra.push(["SASL_SSL", secure.saslSslPort])
  }
  const listeners = [
    `PLAINTEXT://${host}:${brokerPort}`,
    `CONTROLLER://${host}:${controllerPort}`,
    ...extra.map(([name, port]) => `${name}://${host}:${port}`)
  ].join(",")
  const protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT", ...extra.map(([name]) => `${name}:${name}`)].join(
    ","
  )
  const security =
    secure === undefined
      ? []
      : [
          "sasl.enabled.mechanisms=SCRAM-SHA-512",
          ...extra.map(
            ([name]) =>
              `listener.name.${name.toLowerCase()}.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;`
          ),
          ...(secure.keystoreFile === undefined
            ? []
            : [
                // Kafka reads PEM directly: the certificate and its key in one file, the key unencrypted.
                "listener.name.sasl_ssl.ssl.keystore.type=PEM",
                `listener.name.sasl_ssl.ssl.keystore.location=${secure.keystoreFile}`,
                "listener.name.sasl_ssl.ssl.client.auth=none"
              ])
        ]
  return [
    "# Generated by infra/kafka/Kafka.ts: single-node KRaft (broker and controller in one JVM) for tests.",
    "process.roles=broker,controller",
    "node.id=1",
    // Bootstrap servers (dynamic quorum), not controller.quorum.voters: that is what `format --standalone` expects.
    `controller.quorum.bootstrap.servers=${host}:${controllerPort}`,
    `listeners=${listeners}`,
    // 127.0.0.1, not localhost: clients connect to what is advertised, and localhost may resolve to ::1.
    `advertised.listeners=${listeners}`,
    "controller.listener.names=CONTROLLER",
    "inter.broker.listener.name=PLAINTEXT",
    `listener.security.protocol.map=${protocols}`,
    ...security,
    `log.dirs=${join(dataDirectory, "kraft")}`,
    "num.partitions=1",
    "default.replication.factor=1",
    "min.insync.replicas=1",
    // Internal topics default to 3 replicas, which a single node can never have.
    "offsets.topic.replication.factor=1",
    // One partition instead of 50: the first consumer group joins faster, and one node gains nothing from 50.
    "offsets.topic.num.partitions=1",
    "transaction.state.log.replication.factor=1",
    "transaction.state.log.min.isr=1",
    "share.coordinator.state.topic.replication.factor=1",
    "share.coordinator.state.topic.min.isr=1",
    // Consumers join at once instead of waiting 3 s for more members.
    "group.initial.rebalance.delay.ms=0",
    // Tests create the topics they use; a typo should fail, not create a topic.
    "auto.create.topics.enable=false",
    ""
  ].join("\n")
}

const javaOptions = (libDirectory: string, dataDirectory: string): ReadonlyArray<string> => [
  "-Djava.awt.headless=true",
  `-Dlog4j2.configurationFile=${log4jConfiguration}`,
  `-Dkafka.logs.dir=${logsDirectory(dataDirectory)}`,
  "-cp",
  join(libDirectory, "*")
]

const runStorageTool = async (
  libDirectory: string,
  dataDirectory: string,
  args: ReadonlyArray<string>
): Promise<string> => {
  const result = await runCommand(javaCommand(), [
    // A short-lived tool: a small heap and the C1 compiler only start quicker.
    "-Xmx256m",
    "-XX:TieredStopAtLevel=1",
    ...javaOptions(libDirectory, dataDirectory),
    "kafka.tools.StorageTool",
    ...args
  ])
  if (result.exitCode !== 0) {
    throw new Error(
      `kafka.tools.StorageTool ${args.join(" ")} failed (exit ${result.exitCode}):\n${tailOfText(result.output)}`
    )
  }
  return result.output
}

/**
 * What `kafka-storage random-uuid` prints (Kafka's `Uuid.randomUuid()`: a version 4 UUID in URL-safe
 * base64 without padding, never starting with "-"), made here: one JVM start less per broker start.
 */
const randomClusterId = (): string => {
  for (;;) {
    const bytes = randomBytes(16)
    bytes[6] = (bytes[6]! & 0x0f) | 0x40
    bytes[8] = (bytes[8]! & 0x3f) | 0x80
    const id = bytes.toString("base64url")
    if (!id.startsWith("-")) return id
  }
}

const formatStorage = async (
  libDirectory: string,
  dataDirectory: string,
  scramUsers: KafkaSecurityOptions["scramUsers"] = []
): Promise<void> => {
  await runStorageTool(libDirectory, dataDirectory, [
    "format",
    "-t",
    randomClusterId(),
    "-c",
    serverPropertiesPath(dataDirectory),
    "--standalone",
    ...scramUsers.flatMap(({ username, password }) => [
      "--add-scram",
      `SCRAM-SHA-512=[name=${username},password=${password}]`
    ])
  ])
}

// ---------------------------------------------------------------------------------------------
// Readiness

/** One metadata request (admin.listTopics) against `brokers`, with short timeouts and no retries. */
export const kafkaAnswers = async (brokers: string): Promise<boolean> => {
  const admin = new Kafka({
    clientId: "dexmon-infra",
    brokers: brokers.split(","),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 1_000,
    requestTimeout: 3_000,
    retry: { retries: 0 }
  }).admin()
  try {
    await admin.connect()
    await admin.listTopics()
    return true
  } catch {
    return false
  } finally {
    await admin.disconnect().catch(() => undefined)
  }
}

/** Polls until a metadata request succeeds; false on timeout or as soon as `stillRunning` says the server died. */
export const waitUntilKafkaAnswers = async (
  brokers: string,
  timeoutMs: number,
  stillRunning: () => boolean = () => true
): Promise<boolean> => {
  const deadline = Date.now() + timeoutMs
  const [firstHost = host, firstPort = ""] = brokers.split(",")[0]?.split(":") ?? []
  while (Date.now() < deadline && stillRunning()) {
    // A cheap TCP probe first: kafkajs is slow to give up on a port nobody listens on yet.
    if ((await acceptsTcp(firstHost, Number(firstPort), 500)) && (await kafkaAnswers(brokers))) return true
    await sleep(200)
  }
  return false
}

// ---------------------------------------------------------------------------------------------
// Start and stop

/** True when `state.pid` is still the Kafka JVM started for `state` (and not a reused pid). */
export const isRunning = (state: Pick<KafkaState, "pid" | "dataDirectory">): boolean =>
  isAlive(state.pid) && commandLine(state.pid).includes(serverPropertiesPath(state.dataDirectory))

export interface KafkaStarted {
  readonly state: KafkaState
  readonly timings: {
    readonly jarsMs: number
    readonly jarsDownloaded: boolean
    readonly formatMs: number
    readonly startMs: number
  }
}

/**
 * Starts a fresh Kafka and resolves once it answers. `onSpawned` runs as soon as the JVM
 * exists, so that the caller records it before the wait: if this process is interrupted
 * during start-up, `down` still finds the JVM. On failure the JVM is stopped and its data removed.
 */
export const startKafka = async (onSpawned: (state: KafkaState) => void): Promise<KafkaStarted> => {
  const { brokerPort, controllerPort } = kafkaPorts()
  await requireFreePorts(host, [brokerPort, controllerPort], "stop it or set DEXMON_KAFKA_PORT")
  return startFreshKafka(kafkaDirectory, brokerPort, controllerPort, onSpawned)
}

/** Formats a new data folder under `parentDirectory` for a node on these ports, then starts the node on it. */
const startFreshKafka = async (
  parentDirectory: string,
  brokerPort: number,
  controllerPort: number,
  onSpawned: (state: KafkaState) => void,
  secure?: { readonly listeners: SecureListeners; readonly options: KafkaSecurityOptions }
): Promise<KafkaStarted> => {
  const version = kafkaVersion()
  const jarsStarted = performance.now()
  const { libDirectory, downloaded } = await ensureKafkaJars(version)
  const jarsMs = performance.now() - jarsStarted

  const formatStarted = performance.now()
  mkdirSync(parentDirectory, { recursive: true })
  const dataDirectory = mkdtempSync(join(parentDirectory, "data-"))
  mkdirSync(logsDirectory(dataDirectory))
  const tls = secure?.options.tls
  if (tls !== undefined) {
    writeFileSync(
      keystorePath(dataDirectory),
      `${readFileSync(tls.keyFile, "utf8").trim()}\n${readFileSync(tls.certificateFile, "utf8").trim()}\n`
    )
  }
  const listeners =
    secure === undefined
      ? undefined
      : { ...secure.listeners, keystoreFile: tls === undefined ? undefined : keystorePath(dataDirectory) }
  writeFileSync(
    serverPropertiesPath(dataDirectory),
    serverProperties(dataDirectory, brokerPort, controllerPort, listeners)
  )
  try {
    await formatStorage(libDirectory, dataDirectory, secure?.options.scramUsers)
  } catch (error) {
    rmSync(dataDirectory, { recursive: true, force: true })
    throw error
  }
  const formatMs = performance.now() - formatStarted

  const startStarted = performance.now()
  const state = await spawnKafka(libDirectory, { version, brokerPort, controllerPort, dataDirectory }, onSpawned)
  return { state, timings: { jarsMs, jarsDownloaded: downloaded, formatMs, startMs: performance.now() - startStarted } }
}

/**
 * Starts the JVM on a formatted data folder (fresh, or kept from a killed node: the ports are in its
 * server.properties) and waits until it answers a metadata request; on failure it stops the JVM,
 * removes the data and throws with the logs.
 */
const spawnKafka = async (
  libDirectory: string,
  node: Pick<KafkaState, "version" | "brokerPort" | "controllerPort" | "dataDirectory">,
  onSpawned: (state: KafkaState) => void
): Promise<KafkaState> => {
  const { version, brokerPort, controllerPort, dataDirectory } = node
  const { state } = await startDetachedJvm({
    name: `Kafka ${version}`,
    java: javaCommand(),
    args: [
      "-Xms512m",
      "-Xmx1g",
      // The flags of Kafka's kafka-server-start.sh / kafka-run-class.sh.
      "-XX:+UseG1GC",
      "-XX:MaxGCPauseMillis=20",
      "-XX:InitiatingHeapOccupancyPercent=35",
      "-XX:+ExplicitGCInvokesConcurrent",
      ...javaOptions(libDirectory, dataDirectory),
      "kafka.Kafka",
      serverPropertiesPath(dataDirectory)
    ],
    dataDirectory,
    logsDirectory: logsDirectory(dataDirectory),
    serverLog: "server.log",
    pidFile: pidFileOf(dataDirectory),
    readyTimeoutMs,
    stateOf: (pid): KafkaState => ({
      pid,
      version,
      host,
      brokerPort,
      controllerPort,
      dataDirectory,
      startedAt: new Date().toISOString()
    }),
    addressOf: kafkaBrokers,
    onSpawned,
    waitUntilReady: async (state, timeoutMs, stillRunning) =>
      (await waitUntilKafkaAnswers(kafkaBrokers(state), timeoutMs, stillRunning))
        ? { ready: true, answer: undefined }
        : { ready: false },
    stop: stopKafka
  })
  return state
}

/** The harness's broker keeps its pid beside the data folders (where `down` looks); a private one inside its own. */
const pidFileOf = (dataDirectory: string): string =>
  dirname(dataDirectory) === privateDirectory ? join(dataDirectory, "kafka.pid") : pidFile

/**
 * A crash, for tests of an outage: SIGKILL (no clean shutdown, nothing flushed that the broker had
 * not flushed itself) and resolves once the JVM is gone. The data folder stays, so `restartKafka`
 * brings the same node back with everything it had acknowledged.
 */
export const killKafkaKeepingData = async (state: Pick<KafkaState, "pid" | "dataDirectory">): Promise<void> => {
  if (!isRunning(state)) return
  process.kill(state.pid, "SIGKILL")
  while (isAlive(state.pid)) await sleep(20)
}

/** Starts a killed node again on its data folder and ports; resolves once it answers a metadata request. */
export const restartKafka = async (
  previous: KafkaState,
  onSpawned: (state: KafkaState) => void = () => undefined
): Promise<KafkaState> => {
  if (isRunning(previous)) throw new Error(`Kafka pid ${previous.pid} still runs on ${previous.dataDirectory}`)
  const { libDirectory } = await ensureKafkaJars(previous.version)
  return spawnKafka(libDirectory, previous, onSpawned)
}

// ---------------------------------------------------------------------------------------------
// Private brokers, for tests that kill one

/** The test process that started a private broker: once it is gone, its broker is an orphan. */
const ownerFile = (dataDirectory: string) => join(dataDirectory, "owner.pid")

/**
 * Starts a broker of the caller's own: ports of its own and a data folder under
 * .infra/kafka/private, recorded as owned by this process. It is not in the harness's state,
 * so `down` and the other tests never see it; the caller stops it with `stopKafka`. A private
 * broker whose owner died without stopping it (a killed test run) is stopped here first.
 */
export const startPrivateKafka = async (
  security?: KafkaSecurityOptions
): Promise<KafkaStarted & { readonly saslPort?: number; readonly saslSslPort?: number }> => {
  await stopOrphanedPrivateKafkas()
  const ports = await privatePorts(security === undefined ? 2 : security.tls === undefined ? 3 : 4)
  const [brokerPort, controllerPort, saslPort, saslSslPort] = ports as [number, number, number?, number?]
  const started = await startFreshKafka(
    privateDirectory,
    brokerPort,
    controllerPort,
    (state) => writeFileSync(ownerFile(state.dataDirectory), `${process.pid}\n`),
    security === undefined || saslPort === undefined
      ? undefined
      : { listeners: { saslPort, saslSslPort }, options: security }
  )
  return {
    ...started,
    ...(saslPort === undefined ? {} : { saslPort }),
    ...(saslSslPort === undefined ? {} : { saslSslPort })
  }
}

const stopOrphanedPrivateKafkas = async (): Promise<void> => {
  if (!existsSync(privateDirectory)) return
  for (const name of readdirSync(privateDirectory)) {
    const dataDirectory = join(privateDirectory, name)
    const owner = readPid(ownerFile(dataDirectory))
    if (owner !== undefined && isAlive(owner)) continue
    // No owner yet: a broker being formatted right now by another test (a minute at most), or one whose start was killed.
    if (owner === undefined && Date.now() - statSync(dataDirectory).mtimeMs < 10 * 60_000) continue
    const pid = readPid(pidFileOf(dataDirectory))
    log(`kafka: removing private broker ${dataDirectory} (pid ${pid}) left by test process ${owner}`)
    if (pid === undefined) rmSync(dataDirectory, { recursive: true, force: true })
    else await stopKafka({ pid, dataDirectory })
  }
}

const readPid = (path: string): number | undefined => {
  try {
    const pid = Number(readFileSync(path, "utf8").trim())
    return Number.isInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

/**
 * `count` consecutive ports nobody listens on (broker, controller, then any SASL listeners), below the
 * kernel's ephemeral range (32768-60999 on Linux): while the broker is down, an outgoing connection (a
 * client reconnecting to it, or any test's) could otherwise be given its port, and the broker could not
 * start again on it.
 */
const privatePorts = async (count: number): Promise<ReadonlyArray<number>> => {
  for (let attempt = 0; attempt < 50; attempt++) {
    // Above the harness's own ports (19xxx), below the ephemeral range; aligned on 4 so that runs of ports never overlap.
    const first = 20_000 + 4 * Math.floor(Math.random() * 3_000)
    const ports = Array.from({ length: count }, (_, index) => first + index)
    let free = true
    for (const port of ports) free = free && (await canListen(port))
    if (free) return ports
  }
  throw new Error(`found no ${count} free consecutive ports between 20000 and 32000 for a private Kafka`)
}

const canListen = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const server = createServer()
    server.once("error", () => resolve(false))
    server.listen(port, host, () => server.close(() => resolve(true)))
  })

/** Stops the JVM (SIGTERM, SIGKILL after 30 s) if it still runs, then removes its data folder and the pid file. */
export const stopKafka = (state: Pick<KafkaState, "pid" | "dataDirectory">): Promise<void> =>
  stopJvm(isRunning(state), state.pid, state.dataDirectory, pidFileOf(state.dataDirectory))
