// The readings export on a real PostgreSQL (DATABASE_URL, default the machine's 127.0.0.1:5432): one user's
// BENCH_EXPORT_READINGS readings (1,000,000: ten sensors every five minutes for about 70 days, through the
// readings store's own upsert), exported as CSV by the gateway (its own process, on the harness's Kafka,
// Cassandra and S3, as deployed) and, in the same run, by a raw baseline: `COPY (SELECT ... ORDER BY ...) TO
// STDOUT WITH CSV HEADER` through psql. Printed for each: rows, MB, seconds, rows/s, CPU seconds and the
// process's RSS when idle, at its peak (sampled every 20 ms) and the growth between.
//
//   pnpm infra up kafka cassandra s3; pnpm bench:export
import { type ChildProcess, spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { resolve } from "node:path"
import { EventId, SensorId, UserId } from "@dexmon/domain"
import { Database, freePort, ReadingStore, type ReadingWrite, SqlReadingStore } from "@dexmon/ports"
import { freshDatabase } from "@dexmon/testing"
import { NodeRuntime } from "@effect/platform-node"
import { Console, Context, Effect, Layer, Redacted } from "effect"
import { benchMallocEnv, SERVICE_NODE_OPTIONS } from "../deploy/NodeOptions.ts"
import * as Harness from "../infra/Harness.ts"

const READINGS = Number(process.env.BENCH_EXPORT_READINGS ?? 1_000_000)
const SENSORS = 10
const MINUTE = 60_000
const root = resolve(import.meta.dirname, "..")
const serverUrl = process.env.DATABASE_URL || "postgres://postgres@127.0.0.1:5432/postgres"
const run = `exp${Date.now().toString(36)}`
const user = UserId.make(`${run}-user`)

let eventCounter = 0
const eventId = () => EventId.make(`01900000-0000-7000-8000-${(eventCounter++).toString(16).padStart(12, "0")}`)

/** VmRSS and the CPU seconds (user + system) of a process, from /proc. */
const sample = (pid: number) => {
  const status = readFileSync(`/proc/${pid}/status`, "utf8")
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0)
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
  const ticks = Number(fields[11]) + Number(fields[12])
  return { rssMb: rssKb / 1024, cpuSeconds: ticks / 100 }
}

/** Samples a process's RSS every 20 ms while `work` runs; its idle RSS, peak and CPU over the work. */
const measured = async <A>(pid: number, work: () => Promise<A>) => {
  const idle = sample(pid)
  let peak = idle.rssMb
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, sample(pid).rssMb)
    } catch {
      // The process ended (psql): its last sample stands.
    }
  }, 20)
  const started = performance.now()
  const result = await work()
  const seconds = (performance.now() - started) / 1000
  clearInterval(timer)
  let cpuSeconds = Number.NaN
  try {
    cpuSeconds = sample(pid).cpuSeconds - idle.cpuSeconds
  } catch {}
  return { result, seconds, idleMb: idle.rssMb, peakMb: peak, cpuSeconds }
}

const waitReady = async (url: string, child: ChildProcess) => {
  for (let i = 0; i < 1_200; i++) {
    if (child.exitCode !== null) throw new Error(`the gateway exited with ${child.exitCode} before it was ready`)
    if (
      await fetch(url).then(
        (response) => response.ok,
        () => false
      )
    )
      return
    await new Promise((done) => setTimeout(done, 100))
  }
  throw new Error(`${url} not ready after 120 s`)
}

/** Reads a response body to its end, counting lines and bytes without keeping it. */
const drain = async (response: Response) => {
  let bytes = 0
  let lines = 0
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    bytes += chunk.byteLength
    for (const byte of chunk) if (byte === 10) lines++
  }
  return { bytes, lines }
}

const program = Effect.gen(function* () {
  const bench = yield* freshDatabase({ server: serverUrl, name: `dexmon_${run}` })
  const context = yield* Layer.build(
    SqlReadingStore.layer.pipe(Layer.provideMerge(Database.layerPgClient(Redacted.make(bench.url))))
  )
  const store = Context.get(context, ReadingStore)
  const perSensor = Math.ceil(READINGS / SENSORS)
  const to = Math.floor(Date.now() / (5 * MINUTE)) * 5 * MINUTE
  const from = to - perSensor * 5 * MINUTE
  yield* Console.log(`seeding ${READINGS.toLocaleString("en")} readings of one user (${SENSORS} sensors)...`)
  const seedStarted = performance.now()
  for (let i = 0; i < perSensor; i += 500) {
    const batch: Array<ReadingWrite> = []
    for (let s = 0; s < SENSORS; s++) {
      for (let j = i; j < Math.min(i + 500, perSensor); j++) {
        batch.push({
          event_id: eventId(),
          sensor_id: SensorId.make(`${run}-s${s}`),
          user_id: user,
          timestamp: from + j * 5 * MINUTE,
          glucose_value: 60 + ((j * 7 + s * 13) % 240),
          source: "SENSOR"
        })
      }
    }
    yield* store.upsert(batch)
  }
  yield* Console.log(`seeded in ${((performance.now() - seedStarted) / 1000).toFixed(0)} s`)

  const servers = yield* Effect.promise(() => Harness.up(["kafka", "cassandra", "s3"]))
  const port = yield* freePort
  const gateway = spawn(process.execPath, [resolve(root, "services/gateway/src/main.ts")], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? "",
      PORT: String(port),
      SECURITY_DISABLED: "true",
      DEXMON_LOG_FORMAT: "json",
      DEXMON_RATE_LIMIT_PER_SECOND: "0",
      NODE_OPTIONS: process.env.BENCH_NODE_OPTIONS ?? SERVICE_NODE_OPTIONS,
      ...benchMallocEnv(),
      DATABASE_URL: bench.url,
      KAFKA_BROKERS: servers.KAFKA_BROKERS!,
      DEXMON_TOPIC_PREFIX: `${run}.`,
      CASSANDRA_CONTACT_POINTS: servers.CASSANDRA_CONTACT_POINTS!,
      CASSANDRA_LOCAL_DC: servers.CASSANDRA_LOCAL_DC ?? "datacenter1",
      CASSANDRA_KEYSPACE: run,
      ...Object.fromEntries(
        Object.entries(servers).filter(([name]) => name.startsWith("S3_") || name.startsWith("AWS_"))
      )
    },
    stdio: ["ignore", "ignore", "inherit"]
  })
  yield* Effect.addFinalizer(() => Effect.sync(() => gateway.kill("SIGTERM")))
  const base = `http://127.0.0.1:${port}`
  yield* Effect.promise(() => waitReady(`${base}/readyz`, gateway))
  // Idle as a person would leave it: ready, then a few seconds with nothing to do.
  yield* Effect.promise(() => new Promise((done) => setTimeout(done, 5_000)))

  const range = `from=${new Date(from).toISOString()}&to=${new Date(to).toISOString()}`
  const dexmon = yield* Effect.promise(() =>
    measured(gateway.pid!, async () =>
      drain(await fetch(`${base}/api/v1/readings/export?${range}&format=csv`, { headers: { "x-user-id": user } }))
    )
  )

  const copy = yield* Effect.promise(
    () =>
      new Promise<Awaited<ReturnType<typeof measured<{ bytes: number; lines: number }>>>>((done, fail) => {
        const psql = spawn(
          "psql",
          [
            bench.url,
            "-Xqc",
            `COPY (SELECT sensor_id, "timestamp", glucose_value, source FROM glucose_readings
              WHERE user_id = '${user}' AND "timestamp" >= '${new Date(from).toISOString()}'
                AND "timestamp" < '${new Date(to).toISOString()}'
              ORDER BY "timestamp", sensor_id) TO STDOUT WITH CSV HEADER`
          ],
          { stdio: ["ignore", "pipe", "inherit"] }
        )
        psql.on("error", fail)
        measured(psql.pid!, async () => {
          let bytes = 0
          let lines = 0
          for await (const chunk of psql.stdout as AsyncIterable<Buffer>) {
            bytes += chunk.byteLength
            for (const byte of chunk) if (byte === 10) lines++
          }
          return { bytes, lines }
        }).then(done, fail)
      })
  )

  const row = (name: string, m: typeof dexmon) =>
    `| ${name} | ${(m.result.lines - 1).toLocaleString("en")} | ${(m.result.bytes / 1048576).toFixed(1)} | ${m.seconds.toFixed(1)} | ${Math.round((m.result.lines - 1) / m.seconds).toLocaleString("en")} | ${m.cpuSeconds.toFixed(1)} | ${m.idleMb.toFixed(0)} | ${m.peakMb.toFixed(0)} | ${(m.peakMb - m.idleMb).toFixed(0)} |`
  yield* Console.log(
    [
      "",
      `Export of one user's ${READINGS.toLocaleString("en")} readings as CSV, ${new Date().toISOString()}:`,
      "",
      "| exporter | rows | MB | s | rows/s | CPU s | idle RSS MB | peak RSS MB | growth MB |",
      "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
      row("DexMon gateway (`GET /api/v1/readings/export`, with trends)", dexmon),
      row("raw: psql `COPY ... TO STDOUT` (psql's own RSS)", copy),
      "",
      `DexMon / raw rows/s: ${((dexmon.result.lines - 1) / dexmon.seconds / ((copy.result.lines - 1) / copy.seconds)).toFixed(2)}`,
      `Target: peak RSS growth over idle under 50 MB: ${dexmon.peakMb - dexmon.idleMb < 50 ? "met" : "MISSED"} (${(dexmon.peakMb - dexmon.idleMb).toFixed(0)} MB)`
    ].join("\n")
  )
  if (dexmon.result.lines - 1 !== READINGS) throw new Error(`the export had ${dexmon.result.lines - 1} rows`)
})

NodeRuntime.runMain(program.pipe(Effect.scoped))
