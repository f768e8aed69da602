// The processes under test: DexMon's services, each `node services/<x>/src/main.ts` as deployed, and
// the raw baseline's two processes; started with their environment, ready when they say so, stopped
// with SIGTERM (SIGKILL after 15 s).
import { type ChildProcess, spawn } from "node:child_process"
import { resolve } from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { benchMallocEnv, SERVICE_NODE_OPTIONS } from "../../deploy/NodeOptions.ts"

const root = resolve(import.meta.dirname, "../..")

export interface Service {
  readonly name: string
  readonly pid: number
  readonly port: number
  readonly tail: () => string
  readonly exited: () => boolean
  readonly stop: () => Promise<void>
}

/** Starts `node <entry> ...args` with `env` (and PATH) and keeps the last 8 kB of its output. */
export const startProcess = (
  name: string,
  entry: string,
  args: ReadonlyArray<string>,
  port: number,
  env: Record<string, string>
): Service => {
  // The V8 options the services are deployed with (deploy/NodeOptions.ts), for every process of both pipelines
  // alike; BENCH_NODE_OPTIONS replaces them ("" for V8's defaults, or profiling options).
  const nodeOptions = process.env.BENCH_NODE_OPTIONS ?? SERVICE_NODE_OPTIONS
  const child: ChildProcess = spawn(process.execPath, [resolve(root, entry), ...args], {
    env: {
      PATH: process.env.PATH ?? "",
      ...env,
      PORT: String(port),
      NODE_OPTIONS: nodeOptions,
      ...benchMallocEnv()
    },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  const keep = (chunk: Buffer) => {
    output = (output + String(chunk)).slice(-8_192)
  }
  child.stdout?.on("data", keep)
  child.stderr?.on("data", keep)
  const exited = () => child.exitCode !== null || child.signalCode !== null
  return {
    name,
    pid: child.pid!,
    port,
    tail: () => output,
    exited,
    stop: async () => {
      if (exited()) return
      const gone = new Promise((done) => child.once("exit", done))
      child.kill("SIGTERM")
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000)
      await gone
      clearTimeout(timer)
    }
  }
}

/** Waits until `ready()` holds; fails with the service's output if it exits or takes over `seconds`. */
export const waitFor = async (service: Service, ready: () => Promise<boolean>, seconds = 120) => {
  const deadline = performance.now() + seconds * 1000
  while (!(await ready().catch(() => false))) {
    if (service.exited()) throw new Error(`${service.name} exited before it was ready:\n${service.tail()}`)
    if (performance.now() > deadline) throw new Error(`${service.name} not ready in ${seconds} s:\n${service.tail()}`)
    await sleep(200)
  }
}

export const readyz = (port: number) => () => fetch(`http://127.0.0.1:${port}/readyz`).then((response) => response.ok)

export interface Settings {
  readonly brokers: string
  readonly databaseUrl: string
  readonly contactPoints: string
  readonly dataCenter: string
  readonly keyspace: string
  readonly prefix: string
  readonly dataDir: string
}

/**
 * DexMon's services' environment: the harness's servers, the run's topic prefix, keyspace and groups;
 * security off (the caller named by X-User-Id, see the README's Security section) and the per-user rate
 * limit off, since the load posts for thousands of users from one address. Only URGENT_LOW alerts (the
 * one kind that is always on) so the episodes are countable; ticks hourly (no NO_DATA, no repeats).
 */
export const dexmonEnvironment = (settings: Settings): Record<string, string> => ({
  HOST: "127.0.0.1",
  DEXMON_LOG_FORMAT: "json",
  DEXMON_DATA_DIR: settings.dataDir,
  KAFKA_BROKERS: settings.brokers,
  DATABASE_URL: settings.databaseUrl,
  CASSANDRA_CONTACT_POINTS: settings.contactPoints,
  CASSANDRA_LOCAL_DC: settings.dataCenter,
  CASSANDRA_KEYSPACE: settings.keyspace,
  DEXMON_TOPIC_PREFIX: settings.prefix,
  DEXMON_READINGS_BACKEND: "postgres",
  SECURITY_DISABLED: "true",
  DEXMON_RATE_LIMIT_PER_SECOND: "0",
  DEXMON_ALERT_LOW: "false",
  DEXMON_ALERT_HIGH: "false",
  DEXMON_ALERT_URGENT_LOW_SOON: "false",
  DEXMON_ALERT_NO_DATA: "false",
  DEXMON_ALERT_URGENT_LOW_REPEAT: "false",
  DEXMON_ALERT_TICK_EVERY: "1h",
  DEXMON_PROCESSOR_GROUP: `${settings.prefix}processor`,
  DEXMON_NOTIFIER_GROUP: `${settings.prefix}notifier`,
  DEXMON_DELIVERER_GROUP: `${settings.prefix}deliverer`
})

export const startDexmon = async (
  services: ReadonlyArray<"receiver" | "processor" | "notifier" | "gateway" | "deliverer">,
  env: Record<string, string>,
  freePort: () => Promise<number>
) => {
  const started: Array<Service> = []
  for (const service of services) {
    started.push(startProcess(service, `services/${service}/src/main.ts`, [], await freePort(), env))
  }
  // One at a time would do too; together they start faster, and each creates the topics it needs.
  await Promise.all(started.map((service) => waitFor(service, readyz(service.port))))
  return started
}

export interface RawSettings extends Settings {
  readonly topic: string
  readonly table: string
  readonly alertsTable: string
  readonly group: string
}

export const startRaw = async (settings: RawSettings, freePort: () => Promise<number>) => {
  const env = {
    KAFKA_BROKERS: settings.brokers,
    DATABASE_URL: settings.databaseUrl,
    CASSANDRA_CONTACT_POINTS: settings.contactPoints,
    CASSANDRA_LOCAL_DC: settings.dataCenter,
    CASSANDRA_KEYSPACE: settings.keyspace,
    RAW_TOPIC: settings.topic,
    RAW_TABLE: settings.table,
    RAW_ALERTS_TABLE: settings.alertsTable,
    RAW_GROUP: settings.group
  }
  const receiver = startProcess("raw receiver", "benchmarks/e2e/raw.ts", ["receiver"], await freePort(), env)
  const consumer = startProcess("raw consumer", "benchmarks/e2e/raw.ts", ["consumer"], await freePort(), env)
  await waitFor(receiver, readyz(receiver.port))
  await waitFor(consumer, async () => consumer.tail().includes("ready"))
  return [receiver, consumer]
}
