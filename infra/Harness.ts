// The programmatic face of the real-server harness, used by `infra/cli.ts` and by the
// test runner: `up` starts (or reuses) the servers and returns the environment variables
// that point clients at them; `down` stops what `up` started.
import {
  cassandraAnswers,
  cassandraContactPoints,
  cassandraDataCenter,
  cassandraEnvironment,
  cassandraPorts,
  cassandraVersion,
  isCassandraRunning,
  killCassandraKeepingData,
  restartCassandra,
  startCassandra,
  stopCassandra,
  waitUntilCassandraAnswers
} from "./cassandra/Cassandra.ts"
import {
  isRunning,
  type KafkaSecurityOptions,
  kafkaAnswers,
  kafkaBrokers,
  kafkaEnvironment,
  kafkaPorts,
  kafkaVersion,
  killKafkaKeepingData,
  restartKafka,
  startKafka,
  startPrivateKafka,
  stopKafka,
  waitUntilKafkaAnswers
} from "./kafka/Kafka.ts"
import { ensureKcat, kcatStatus } from "./kcat/Kcat.ts"
import { log, seconds } from "./Processes.ts"
import { upPostgres } from "./postgres/Postgres.ts"
import {
  isPrometheusServersRunning,
  type PrometheusServersState,
  prometheusServerPorts,
  prometheusServersAnswer,
  prometheusServersEnvironment,
  startPrometheusServers,
  stopPrometheusServers
} from "./prometheus/PrometheusServers.ts"
import { ensurePrometheusTools, prometheusToolsStatus } from "./prometheus/PrometheusTools.ts"
import { type InfraState, readState, type S3State, withLock, writeState } from "./State.ts"
import {
  externalS3Settings,
  harnessS3Settings,
  hasS3ProxyData,
  isS3ProxyRunning,
  restartS3Proxy,
  type S3ProxyStarted,
  s3Endpoint,
  s3Environment,
  s3Port,
  s3Problem,
  s3ProxyVersion,
  startS3Proxy,
  stopS3Proxy,
  waitUntilBucketAnswers
} from "./s3/S3.ts"
import {
  isTimescaleRunning,
  startTimescale,
  stopTimescale,
  timescaleAnswers,
  timescaleDescription,
  timescaleEnvironment,
  timescalePort
} from "./timescale/Timescale.ts"

import {
  isZipkinRunning,
  startZipkin,
  stopZipkin,
  waitUntilZipkinAnswers,
  zipkinEnvironment,
  zipkinExporterEnvironment,
  zipkinPort,
  zipkinProblem,
  zipkinUrl,
  zipkinVersion
} from "./zipkin/Zipkin.ts"

export { type PrivateTimescale, privateTimescale } from "./timescale/Timescale.ts"

/**
 * kafkajs 2.2.4 calls setTimeout with a negative delay, which Node 24 reports as a TimeoutNegativeWarning on
 * every connection (tulios/kafkajs#1751, unfixed upstream). It is harmless, so the harness's command and the
 * benchmarks print every warning except that one in place of Node's default printer (the services do the
 * same in `@dexmon/platform`'s runtime).
 */
export const hideKafkajsTimerWarning = (): void => {
  process.removeAllListeners("warning")
  process.on("warning", (warning) => {
    if (warning.name !== "TimeoutNegativeWarning")
      console.error(`(node:${process.pid}) ${warning.name}: ${warning.message}`)
  })
}

export type Service = "kafka" | "postgres" | "cassandra" | "s3" | "timescale" | "observability" | "zipkin"
/** What `up` starts when no service is named (the servers the test runner needs); s3 only when asked for. */
export const allServices: ReadonlyArray<Service> = ["kafka", "postgres", "cassandra"]
/** Every service `up` can start when named. */
export const knownServices: ReadonlyArray<Service> = [...allServices, "s3", "timescale", "observability", "zipkin"]

export const isService = (name: string): name is Service => (knownServices as ReadonlyArray<string>).includes(name)

/**
 * Client programs the tests run beside the servers: `up` puts one under .infra when the machine lacks it
 * (never when no name is given) and `down` leaves it, as it leaves the servers' jars.
 */
export type Tool = "kcat" | "prometheus"
export const knownTools: ReadonlyArray<Tool> = ["kcat", "prometheus"]

export const isTool = (name: string): name is Tool => (knownTools as ReadonlyArray<string>).includes(name)

/** How long an already running server (ours, or from KAFKA_BROKERS, CASSANDRA_CONTACT_POINTS or S3_ENDPOINT) gets to answer before `up` gives up. */
const existingServerTimeoutMs = 30_000

export async function up(services: ReadonlyArray<Service | Tool> = allServices): Promise<Record<string, string>> {
  const environment: Record<string, string> = {}
  for (const service of services) {
    switch (service) {
      case "kafka":
        Object.assign(environment, await upKafka())
        break
      case "postgres":
        Object.assign(environment, await upPostgres())
        break
      case "cassandra":
        Object.assign(environment, await upCassandra())
        break
      case "s3":
        Object.assign(environment, await upS3())
        break
      case "timescale":
        Object.assign(environment, await upTimescale())
        break
      case "observability":
        Object.assign(environment, await upPrometheusServers())
        break
      case "zipkin":
        Object.assign(environment, await upZipkin())
        break
      case "kcat":
        putFirstOnPath(environment, await upKcat())
        break
      case "prometheus":
        putFirstOnPath(environment, await upPrometheusTools())
        break
    }
  }
  return environment
}

/** Puts a tool's folder (none: the tool is the machine's) first on the PATH the environment answers. */
const putFirstOnPath = (environment: Record<string, string>, folder: string | undefined): void => {
  if (folder === undefined) return
  const rest = (environment.PATH ?? process.env.PATH ?? "").split(":").filter((part) => part !== "" && part !== folder)
  environment.PATH = [folder, ...rest].join(":")
}

/** Prometheus, promtool, Alertmanager and the Pushgateway (infra/prometheus): the folder that holds them. */
const upPrometheusTools = async (): Promise<string> => {
  const tools = await ensurePrometheusTools()
  if (!tools.downloaded) log(`prometheus: ${tools.version}, fetched before (${tools.binDirectory})`)
  return tools.binDirectory
}

/**
 * kcat from PATH, or fetched under .infra (see infra/kcat/Kcat.ts): for the fetched one, the folder to put
 * first on PATH, so that a process given the environment finds plain `kcat`.
 */
const upKcat = async (): Promise<string | undefined> => {
  const kcat = await ensureKcat()
  if (kcat.binDirectory === undefined) {
    log(`kcat: the machine's (${kcat.version})`)
    return undefined
  }
  if (!kcat.downloaded) log(`kcat: ${kcat.version}, fetched before (${kcat.command})`)
  return kcat.binDirectory
}

const upKafka = async (): Promise<Record<string, string>> => {
  const external = process.env.KAFKA_BROKERS
  if (external !== undefined && external !== "") {
    log(`kafka: using KAFKA_BROKERS=${external} from the environment instead of starting one`)
    if (!(await waitUntilKafkaAnswers(external, existingServerTimeoutMs))) {
      throw new Error(
        `KAFKA_BROKERS=${external} does not answer a metadata request within ${seconds(existingServerTimeoutMs)}`
      )
    }
    return kafkaEnvironment(external)
  }

  return withLock(async () => {
    const started = performance.now()
    const previous = readState().kafka
    if (previous !== undefined) {
      if (isRunning(previous)) {
        if (await waitUntilKafkaAnswers(kafkaBrokers(previous), existingServerTimeoutMs, () => isRunning(previous))) {
          log(
            `kafka ${previous.version} already running on ${kafkaBrokers(previous)} (pid ${previous.pid}, since ${previous.startedAt}); reused`
          )
          const { brokerPort } = kafkaPorts()
          if (previous.version !== kafkaVersion() || previous.brokerPort !== brokerPort) {
            log(`kafka: note: asked for ${kafkaVersion()} on port ${brokerPort}; run \`down\` first to get that`)
          }
          return kafkaEnvironment(kafkaBrokers(previous))
        }
        log(`kafka pid ${previous.pid} runs but does not answer; stopping it and starting a new one`)
      } else {
        log(`kafka pid ${previous.pid} from ${previous.startedAt} is gone; cleaning up after it`)
      }
      await stopKafka(previous)
      writeState(withoutKafka(readState()))
    }

    const { state, timings } = await startKafka((spawned) => writeState({ ...readState(), kafka: spawned })).catch(
      (error: unknown) => {
        writeState(withoutKafka(readState()))
        throw error
      }
    )
    const jars = timings.jarsDownloaded ? `jars downloaded ${seconds(timings.jarsMs)}` : "jars cached"
    log(
      `kafka ${state.version} ready on ${kafkaBrokers(state)} in ${seconds(performance.now() - started)} ` +
        `(${jars}, format ${seconds(timings.formatMs)}, start ${seconds(timings.startMs)}; pid ${state.pid}, data ${state.dataDirectory})`
    )
    return kafkaEnvironment(kafkaBrokers(state))
  })
}

const withoutKafka = ({ kafka: _kafka, ...rest }: InfraState): InfraState => rest

const upCassandra = async (): Promise<Record<string, string>> => {
  const external = process.env.CASSANDRA_CONTACT_POINTS
  if (external !== undefined && external !== "") {
    log(`cassandra: using CASSANDRA_CONTACT_POINTS=${external} from the environment instead of starting one`)
    const answer = await waitUntilCassandraAnswers(external, existingServerTimeoutMs)
    if (answer === undefined) {
      throw new Error(
        `CASSANDRA_CONTACT_POINTS=${external} does not answer a CQL query within ${seconds(existingServerTimeoutMs)}`
      )
    }
    // The data centre the first node answering says it is in, unless CASSANDRA_LOCAL_DC names one.
    const localDataCenter = process.env.CASSANDRA_LOCAL_DC || answer.dataCenter
    log(`cassandra: ${answer.releaseVersion} answers on ${external} (local data centre ${localDataCenter})`)
    return cassandraEnvironment(external, localDataCenter)
  }

  return withLock(async () => {
    const started = performance.now()
    const previous = readState().cassandra
    if (previous !== undefined) {
      if (isCassandraRunning(previous)) {
        const contactPoints = cassandraContactPoints(previous)
        if (
          await waitUntilCassandraAnswers(contactPoints, existingServerTimeoutMs, () => isCassandraRunning(previous))
        ) {
          log(
            `cassandra ${previous.version} already running on ${contactPoints} (pid ${previous.pid}, since ${previous.startedAt}); reused`
          )
          const { nativePort } = cassandraPorts()
          if (previous.version !== cassandraVersion() || previous.nativePort !== nativePort) {
            log(
              `cassandra: note: asked for ${cassandraVersion()} on port ${nativePort}; run \`down\` first to get that`
            )
          }
          return cassandraEnvironment(contactPoints, cassandraDataCenter)
        }
        log(`cassandra pid ${previous.pid} runs but does not answer; stopping it and starting a new one`)
      } else {
        log(`cassandra pid ${previous.pid} from ${previous.startedAt} is gone; cleaning up after it`)
      }
      await stopCassandra(previous)
      writeState(withoutCassandra(readState()))
    }

    const { state, releaseVersion, timings } = await startCassandra((spawned) =>
      writeState({ ...readState(), cassandra: spawned })
    ).catch((error: unknown) => {
      writeState(withoutCassandra(readState()))
      throw error
    })
    const jars = timings.jarsDownloaded ? `jars downloaded ${seconds(timings.jarsMs)}` : "jars cached"
    log(
      `cassandra ${releaseVersion} ready on ${cassandraContactPoints(state)} in ${seconds(performance.now() - started)} ` +
        `(${jars}, start ${seconds(timings.startMs)}; pid ${state.pid}, data ${state.dataDirectory})`
    )
    return cassandraEnvironment(cassandraContactPoints(state), cassandraDataCenter)
  })
}

const withoutCassandra = ({ cassandra: _cassandra, ...rest }: InfraState): InfraState => rest

const upS3 = async (): Promise<Record<string, string>> => {
  const external = process.env.S3_ENDPOINT
  if (external !== undefined && external !== "") {
    const settings = externalS3Settings(external)
    log(`s3: using S3_ENDPOINT=${external} from the environment instead of starting one (bucket ${settings.bucket})`)
    const started = performance.now()
    // Creates the bucket when it is missing, as for the harness's own server: tests expect it to exist.
    const problem = await waitUntilBucketAnswers(settings, existingServerTimeoutMs)
    if (problem !== undefined) {
      throw new Error(
        `S3_ENDPOINT=${external} does not let bucket ${settings.bucket} be listed within ${seconds(existingServerTimeoutMs)}: ${problem}`
      )
    }
    log(`s3: ${external} answers, bucket ${settings.bucket} listed (${seconds(performance.now() - started)})`)
    return s3Environment(settings)
  }

  return withLock(async () => {
    const started = performance.now()
    const onSpawned = (spawned: S3State) => writeState({ ...readState(), s3: spawned })
    const forgetOnFailure = (error: unknown): never => {
      writeState(withoutS3(readState()))
      throw error
    }
    const previous = readState().s3
    if (previous !== undefined) {
      if (isS3ProxyRunning(previous)) {
        const settings = harnessS3Settings(previous)
        const problem = await waitUntilBucketAnswers(settings, existingServerTimeoutMs, () =>
          isS3ProxyRunning(previous)
        )
        if (problem === undefined) {
          log(
            `s3proxy ${previous.version} already running on ${settings.endpoint} (pid ${previous.pid}, since ${previous.startedAt}); reused`
          )
          if (previous.version !== s3ProxyVersion() || previous.port !== s3Port()) {
            log(`s3proxy: note: asked for ${s3ProxyVersion()} on port ${s3Port()}; run \`down s3\` first to get that`)
          }
          return s3Environment(settings)
        }
        log(`s3proxy pid ${previous.pid} runs but does not answer (${problem}); stopping it and starting a new one`)
      } else if (hasS3ProxyData(previous)) {
        // Unlike Kafka's and Cassandra's, this data is worth keeping: the objects are files that a new JVM serves again.
        log(
          `s3proxy pid ${previous.pid} from ${previous.startedAt} is gone; starting it again on its data ${previous.dataDirectory}`
        )
        const restarted = await restartS3Proxy(previous, onSpawned).catch(forgetOnFailure)
        reportS3Started("back", started, restarted)
        return s3Environment(harnessS3Settings(restarted.state))
      } else {
        log(`s3proxy pid ${previous.pid} from ${previous.startedAt} is gone, and so is its data; cleaning up after it`)
      }
      await stopS3Proxy(previous)
      writeState(withoutS3(readState()))
    }

    const fresh = await startS3Proxy(onSpawned).catch(forgetOnFailure)
    reportS3Started("ready", started, fresh)
    return s3Environment(harnessS3Settings(fresh.state))
  })
}

const reportS3Started = (what: string, started: number, { state, timings }: S3ProxyStarted): void => {
  const jars = timings.jarsDownloaded ? `jars downloaded ${seconds(timings.jarsMs)}` : "jars cached"
  log(
    `s3proxy ${state.version} ${what} on ${s3Endpoint(state)} in ${seconds(performance.now() - started)} ` +
      `(${jars}, start ${seconds(timings.startMs)}; pid ${state.pid}, data ${state.dataDirectory})`
  )
}

const withoutS3 = ({ s3: _s3, ...rest }: InfraState): InfraState => rest

/** TimescaleDB (PGlite with the extension): reused while it runs, else started on fresh data. */
const upTimescale = async (): Promise<Record<string, string>> =>
  withLock(async () => {
    const started = performance.now()
    const previous = readState().timescale
    if (previous !== undefined) {
      if (isTimescaleRunning(previous) && (await timescaleAnswers(previous))) {
        log(`timescale already running on ${previous.host}:${previous.port} (pid ${previous.pid}); reused`)
        if (previous.port !== timescalePort())
          log(`timescale: note: asked for port ${timescalePort()}; run \`down timescale\` first`)
        return timescaleEnvironment(previous.port)
      }
      log(`timescale pid ${previous.pid} is gone or does not answer; starting a new one`)
      await stopTimescale(previous)
      writeState(withoutTimescale(readState()))
    }
    const state = await startTimescale((spawned) => writeState({ ...readState(), timescale: spawned }))
    log(
      `timescale ready on ${state.host}:${state.port} in ${seconds(performance.now() - started)} (${timescaleDescription(state)}; pid ${state.pid})`
    )
    return timescaleEnvironment(state.port)
  })

const withoutTimescale = ({ timescale: _timescale, ...rest }: InfraState): InfraState => rest

/** Prometheus, Alertmanager and the Pushgateway (infra/prometheus/PrometheusServers.ts): reused while they answer. */
const upPrometheusServers = async (): Promise<Record<string, string>> =>
  withLock(async () => {
    const started = performance.now()
    const previous = readState().prometheusServers
    if (previous !== undefined) {
      if (isPrometheusServersRunning(previous) && (await prometheusServersAnswer(previous))) {
        log(
          `observability: Prometheus, Alertmanager and the Pushgateway already running (${describePrometheusServers(previous)}); reused`
        )
        if (previous.prometheus.port !== prometheusServerPorts().prometheus)
          log("observability: note: asked for other ports; run `down observability` first")
        return prometheusServersEnvironment(previous)
      }
      log("observability: a server of the last start is gone or does not answer; starting them again")
      await stopPrometheusServers(previous)
      writeState(withoutPrometheusServers(readState()))
    }
    const state = await startPrometheusServers((spawned) =>
      writeState({ ...readState(), prometheusServers: spawned })
    ).catch((error: unknown) => {
      writeState(withoutPrometheusServers(readState()))
      throw error
    })
    log(
      `observability: ${state.version} ready in ${seconds(performance.now() - started)} (${describePrometheusServers(state)}; data ${state.dataDirectory})`
    )
    return prometheusServersEnvironment(state)
  })

const describePrometheusServers = (state: PrometheusServersState): string =>
  `Prometheus on ${state.prometheus.port} (pid ${state.prometheus.pid}), Alertmanager on ${state.alertmanager.port} ` +
  `(pid ${state.alertmanager.pid}), Pushgateway on ${state.pushgateway.port} (pid ${state.pushgateway.pid}), alert webhook ${state.webhookPort}`

const withoutPrometheusServers = ({ prometheusServers: _servers, ...rest }: InfraState): InfraState => rest

const downPrometheusServers = async (): Promise<void> => {
  const servers = readState().prometheusServers
  if (servers === undefined) {
    log("observability: not started by this harness; nothing to stop")
    return
  }
  const started = performance.now()
  await stopPrometheusServers(servers)
  writeState(withoutPrometheusServers(readState()))
  log(`observability: stopped in ${seconds(performance.now() - started)}; removed ${servers.dataDirectory}`)
}

const prometheusServersStatus = async (): Promise<string> => {
  const servers = readState().prometheusServers
  if (servers === undefined) return "observability: not running"
  if (!isPrometheusServersRunning(servers))
    return "observability: not running (stale state: a server is gone; `down observability` cleans up)"
  const answers = (await prometheusServersAnswer(servers)) ? "answer" : "do NOT all answer"
  return `observability: ${servers.version}: ${describePrometheusServers(servers)}, since ${servers.startedAt}, ${answers}`
}

/**
 * Zipkin (infra/zipkin): reused while it answers, else started with an empty store. Answers where its API is
 * (`ZIPKIN_URL`) and not the exporter variables, so the DexMon processes of `pnpm test` export no spans
 * unless a test asks them to; `env` prints those too, for a DexMon run by hand.
 */
const upZipkin = async (): Promise<Record<string, string>> =>
  withLock(async () => {
    const started = performance.now()
    const previous = readState().zipkin
    if (previous !== undefined) {
      if (
        isZipkinRunning(previous) &&
        (await waitUntilZipkinAnswers(previous, existingServerTimeoutMs, () => isZipkinRunning(previous)))
      ) {
        log(`zipkin ${previous.version} already running on ${zipkinUrl(previous)} (pid ${previous.pid}); reused`)
        if (previous.version !== zipkinVersion() || previous.port !== zipkinPort())
          log(`zipkin: note: asked for ${zipkinVersion()} on port ${zipkinPort()}; run \`down zipkin\` first`)
        return zipkinEnvironment(previous)
      }
      log(`zipkin pid ${previous.pid} is gone or does not answer; starting a new one`)
      await stopZipkin(previous)
      writeState(withoutZipkin(readState()))
    }
    const { state, timings } = await startZipkin((spawned) => writeState({ ...readState(), zipkin: spawned })).catch(
      (error: unknown) => {
        writeState(withoutZipkin(readState()))
        throw error
      }
    )
    const jar = timings.jarDownloaded ? `jar downloaded ${seconds(timings.jarMs)}` : "jar cached"
    log(
      `zipkin ${state.version} ready on ${zipkinUrl(state)} in ${seconds(performance.now() - started)} ` +
        `(${jar}, start ${seconds(timings.startMs)}; pid ${state.pid}, spans in memory)`
    )
    return zipkinEnvironment(state)
  })

const withoutZipkin = ({ zipkin: _zipkin, ...rest }: InfraState): InfraState => rest

const downZipkin = async (): Promise<void> => {
  const zipkin = readState().zipkin
  if (zipkin === undefined) {
    log("zipkin: not started by this harness; nothing to stop")
    return
  }
  const started = performance.now()
  const wasRunning = isZipkinRunning(zipkin)
  await stopZipkin(zipkin)
  writeState(withoutZipkin(readState()))
  log(
    wasRunning
      ? `zipkin (pid ${zipkin.pid}) stopped in ${seconds(performance.now() - started)}; its spans are gone`
      : `zipkin (pid ${zipkin.pid}) was no longer running; removed ${zipkin.dataDirectory}`
  )
}

const zipkinStatus = async (): Promise<string> => {
  const zipkin = readState().zipkin
  if (zipkin === undefined) return "zipkin: not running"
  if (!isZipkinRunning(zipkin))
    return `zipkin: not running (stale state: pid ${zipkin.pid} is gone; \`down\` cleans up)`
  const problem = await zipkinProblem(zipkin)
  const answers = problem === undefined ? "answers" : `does NOT answer (${problem})`
  return `zipkin: ${zipkin.version} on ${zipkinUrl(zipkin)} (UI ${zipkinUrl(zipkin)}/zipkin/), pid ${zipkin.pid}, since ${zipkin.startedAt}, ${answers}`
}

const downTimescale = async (): Promise<void> => {
  const timescale = readState().timescale
  if (timescale === undefined) {
    log("timescale: not started by this harness; nothing to stop")
    return
  }
  const started = performance.now()
  const wasRunning = isTimescaleRunning(timescale)
  await stopTimescale(timescale)
  writeState(withoutTimescale(readState()))
  log(
    wasRunning
      ? `timescale (pid ${timescale.pid}) stopped in ${seconds(performance.now() - started)}; removed ${timescale.dataDirectory}`
      : `timescale (pid ${timescale.pid}) was no longer running; removed ${timescale.dataDirectory}`
  )
}

/**
 * Stops every server `up` started (not one given by KAFKA_BROKERS, CASSANDRA_CONTACT_POINTS or S3_ENDPOINT)
 * and removes its data; with `services`, only those (`down s3` after a one-off `up s3` leaves the rest running).
 * PostgreSQL is the machine's, never stopped.
 */
export async function down(services: ReadonlyArray<Service> = knownServices): Promise<void> {
  await withLock(async () => {
    if (services.includes("kafka")) await downKafka()
    if (services.includes("cassandra")) await downCassandra()
    if (services.includes("s3")) await downS3()
    if (services.includes("timescale")) await downTimescale()
    if (services.includes("zipkin")) await downZipkin()
    if (services.includes("observability")) await downPrometheusServers()
  })
}

const downKafka = async (): Promise<void> => {
  const kafka = readState().kafka
  if (kafka === undefined) {
    log("kafka: not started by this harness; nothing to stop")
    return
  }
  const started = performance.now()
  const wasRunning = isRunning(kafka)
  await stopKafka(kafka)
  writeState(withoutKafka(readState()))
  log(
    wasRunning
      ? `kafka (pid ${kafka.pid}) stopped in ${seconds(performance.now() - started)}; removed ${kafka.dataDirectory}`
      : `kafka (pid ${kafka.pid}) was no longer running; removed ${kafka.dataDirectory}`
  )
}

const downCassandra = async (): Promise<void> => {
  const cassandra = readState().cassandra
  if (cassandra === undefined) {
    log("cassandra: not started by this harness; nothing to stop")
    return
  }
  const started = performance.now()
  const wasRunning = isCassandraRunning(cassandra)
  await stopCassandra(cassandra)
  writeState(withoutCassandra(readState()))
  log(
    wasRunning
      ? `cassandra (pid ${cassandra.pid}) stopped in ${seconds(performance.now() - started)}; removed ${cassandra.dataDirectory}`
      : `cassandra (pid ${cassandra.pid}) was no longer running; removed ${cassandra.dataDirectory}`
  )
}

const downS3 = async (): Promise<void> => {
  const s3 = readState().s3
  if (s3 === undefined) {
    log("s3proxy: not started by this harness; nothing to stop")
    return
  }
  const started = performance.now()
  const wasRunning = isS3ProxyRunning(s3)
  await stopS3Proxy(s3)
  writeState(withoutS3(readState()))
  log(
    wasRunning
      ? `s3proxy (pid ${s3.pid}) stopped in ${seconds(performance.now() - started)}; removed ${s3.dataDirectory}`
      : `s3proxy (pid ${s3.pid}) was no longer running; removed ${s3.dataDirectory}`
  )
}

/** The environment variables of the servers that run now (started by `up`). */
export function environment(): Record<string, string> {
  const { kafka, cassandra, s3, timescale, prometheusServers, zipkin } = readState()
  return {
    ...(kafka !== undefined && isRunning(kafka) ? kafkaEnvironment(kafkaBrokers(kafka)) : {}),
    ...(cassandra !== undefined && isCassandraRunning(cassandra)
      ? cassandraEnvironment(cassandraContactPoints(cassandra), cassandraDataCenter)
      : {}),
    ...(s3 !== undefined && isS3ProxyRunning(s3) ? s3Environment(harnessS3Settings(s3)) : {}),
    ...(zipkin !== undefined && isZipkinRunning(zipkin)
      ? { ...zipkinEnvironment(zipkin), ...zipkinExporterEnvironment(zipkin) }
      : {}),
    ...(timescale !== undefined && isTimescaleRunning(timescale) ? timescaleEnvironment(timescale.port) : {}),
    ...(prometheusServers !== undefined && isPrometheusServersRunning(prometheusServers)
      ? prometheusServersEnvironment(prometheusServers)
      : {})
  }
}

/** One line per server the harness starts (whether it runs, where, and whether it answers), then one per tool. */
export async function status(): Promise<ReadonlyArray<string>> {
  return [
    await kafkaStatus(),
    await cassandraStatus(),
    await s3Status(),
    await timescaleStatus(),
    await zipkinStatus(),
    await prometheusServersStatus(),
    await kcatStatus(),
    await prometheusToolsStatus()
  ]
}

const timescaleStatus = async (): Promise<string> => {
  const timescale = readState().timescale
  if (timescale === undefined) return "timescale: not running"
  if (!isTimescaleRunning(timescale))
    return `timescale: not running (stale state: pid ${timescale.pid} is gone; \`down\` cleans up)`
  const answers = (await timescaleAnswers(timescale)) ? "answers" : "does NOT answer"
  return `timescale: ${timescaleDescription(timescale)} on ${timescale.host}:${timescale.port}, pid ${timescale.pid}, since ${timescale.startedAt}, ${answers}`
}

const kafkaStatus = async (): Promise<string> => {
  const kafka = readState().kafka
  if (kafka === undefined) return "kafka: not running"
  if (!isRunning(kafka)) return `kafka: not running (stale state: pid ${kafka.pid} is gone; \`down\` cleans up)`
  const answers = (await kafkaAnswers(kafkaBrokers(kafka))) ? "answers" : "does NOT answer"
  return (
    `kafka: ${kafka.version} on ${kafkaBrokers(kafka)} (controller ${kafka.host}:${kafka.controllerPort}), ` +
    `pid ${kafka.pid}, since ${kafka.startedAt}, ${answers}; data ${kafka.dataDirectory}`
  )
}

const cassandraStatus = async (): Promise<string> => {
  const cassandra = readState().cassandra
  if (cassandra === undefined) return "cassandra: not running"
  if (!isCassandraRunning(cassandra)) {
    return `cassandra: not running (stale state: pid ${cassandra.pid} is gone; \`down\` cleans up)`
  }
  const answers =
    (await cassandraAnswers(cassandraContactPoints(cassandra))) !== undefined ? "answers" : "does NOT answer"
  return (
    `cassandra: ${cassandra.version} on ${cassandraContactPoints(cassandra)} (storage ${cassandra.host}:${cassandra.storagePort}), ` +
    `pid ${cassandra.pid}, since ${cassandra.startedAt}, ${answers}; data ${cassandra.dataDirectory}`
  )
}

const s3Status = async (): Promise<string> => {
  const s3 = readState().s3
  if (s3 === undefined) return "s3proxy: not running"
  if (!isS3ProxyRunning(s3)) {
    return `s3proxy: not running (stale state: pid ${s3.pid} is gone; \`up s3\` starts it again on its data, \`down\` removes it)`
  }
  const settings = harnessS3Settings(s3)
  const problem = await s3Problem(settings)
  const answers = problem === undefined ? `answers (bucket ${settings.bucket})` : `does NOT answer (${problem})`
  return `s3proxy: ${s3.version} on ${settings.endpoint}, pid ${s3.pid}, since ${s3.startedAt}, ${answers}; data ${s3.dataDirectory}`
}

/**
 * For tests of an outage: kills the Cassandra node this harness started (its data stays), waits
 * `downMs`, starts it again on the same data and resolves once it answers. Only a node the harness
 * started can be stopped: one named by CASSANDRA_CONTACT_POINTS is not ours to stop.
 */
export async function cassandraOutage(downMs: number): Promise<void> {
  const state = readState().cassandra
  if (state === undefined) {
    throw new Error(
      "no Cassandra started by the harness to stop: run the tests with `pnpm test` (not an external cluster)"
    )
  }
  await killCassandraKeepingData(state)
  log(`cassandra (pid ${state.pid}) killed for an outage of ${seconds(downMs)}`)
  await new Promise((resolve) => setTimeout(resolve, downMs))
  const started = performance.now()
  const restarted = await restartCassandra(state, (spawned) => writeState({ ...readState(), cassandra: spawned }))
  log(
    `cassandra back on ${cassandraContactPoints(restarted)} in ${seconds(performance.now() - started)} (pid ${restarted.pid})`
  )
}

/** A single-node Kafka of one test's own, which it may crash and bring back; see `privateKafka`. */
export interface PrivateKafka {
  /** `KAFKA_BROKERS` for the services under test. */
  readonly brokers: string
  /** The JVM's pid now (it changes with each restart). */
  readonly pid: () => number
  /** SIGKILL, as a crash would; resolves once the JVM is gone. The data stays. */
  readonly kill: () => Promise<void>
  /** Starts it again on the same data and ports; resolves at its first answered metadata request. */
  readonly restart: () => Promise<void>
  /** Stops it and removes its data. */
  readonly stop: () => Promise<void>
}

/** A private Kafka with SASL listeners (see `privateKafka(security)`); `brokers` stays PLAINTEXT, for the test's own admin. */
export interface SecuredPrivateKafka extends PrivateKafka {
  /** `KAFKA_BROKERS` of the SASL_PLAINTEXT (SCRAM-SHA-512) listener. */
  readonly saslBrokers: string
  /** `KAFKA_BROKERS` of the SASL_SSL listener, when a certificate was given. */
  readonly saslSslBrokers?: string
}

/**
 * For tests of a broker outage: a Kafka of the caller's own (same jars and settings as the harness's,
 * free ports of its own, its own data folder), never the shared one that other tests are using at the
 * same time. The caller must `stop` it; one left by a killed test run is removed by the next start.
 */
export async function privateKafka(): Promise<PrivateKafka>
/**
 * With `security`: the same broker with a SASL_PLAINTEXT listener (SCRAM-SHA-512, the given users) at
 * `saslBrokers`, and with `security.tls` a SASL_SSL one at `saslSslBrokers`, besides its PLAINTEXT one.
 */
export async function privateKafka(security: KafkaSecurityOptions): Promise<SecuredPrivateKafka>
export async function privateKafka(security?: KafkaSecurityOptions): Promise<PrivateKafka | SecuredPrivateKafka> {
  const started = performance.now()
  const begun = await startPrivateKafka(security)
  let { state } = begun
  const saslBrokers = begun.saslPort === undefined ? undefined : `${state.host}:${begun.saslPort}`
  const saslSslBrokers = begun.saslSslPort === undefined ? undefined : `${state.host}:${begun.saslSslPort}`
  log(
    `kafka (private) ready on ${kafkaBrokers(state)}${saslBrokers === undefined ? "" : `, SASL_PLAINTEXT ${saslBrokers}`}${saslSslBrokers === undefined ? "" : `, SASL_SSL ${saslSslBrokers}`} in ${seconds(performance.now() - started)} (pid ${state.pid}, data ${state.dataDirectory})`
  )
  return {
    ...(saslBrokers === undefined ? {} : { saslBrokers }),
    ...(saslSslBrokers === undefined ? {} : { saslSslBrokers }),
    brokers: kafkaBrokers(state),
    pid: () => state.pid,
    kill: async () => {
      await killKafkaKeepingData(state)
      log(`kafka (private, pid ${state.pid}) killed; data kept in ${state.dataDirectory}`)
    },
    restart: async () => {
      const restarting = performance.now()
      state = await restartKafka(state)
      log(
        `kafka (private) back on ${kafkaBrokers(state)} in ${seconds(performance.now() - restarting)} (pid ${state.pid})`
      )
    },
    stop: () => stopKafka(state)
  }
}
