// The production topology under load, beside a raw baseline pipeline in the same run (issue 18).
//
//   pnpm bench:e2e     (the harness's Kafka and Cassandra, the machine's PostgreSQL at DATABASE_URL;
//                       BENCH_PHASE_SECONDS (30), BENCH_SENSORS (5000), BENCH_BACKFILL_SENSORS (500),
//                       BENCH_DRAIN_SECONDS (300), BENCH_WEBHOOK_ENDPOINTS (1000), BENCH_PHASES (all:
//                       single,batch100,backfill,open50,delivery), BENCH_OUT (the JSON file of the figures; default /tmp/e2e-<date>.json) change the run)
//
// DexMon: receiver, processor and notifier, each `node services/<x>/src/main.ts`, on a fresh database,
// keyspace and topic prefix. Raw: `benchmarks/e2e/raw.ts` (node:http → kafkajs → a bare consumer → the
// same unnest upsert and a plain Cassandra INSERT per urgent-low reading). Load: autocannon. Phases, for
// each pipeline in turn: closed-loop single posts, closed-loop batches of 100, a backfill burst (one
// request per sensor holding its last day), then an open loop at half of DexMon's single-post maximum.
// Per phase: readings/s accepted, POST p50/p99 (autocannon), reading-stored and alert-stored p50/p99
// (probes polled in PostgreSQL and Cassandra by this process), CPU seconds and peak RSS per process from
// /proc (DexMon's or the baseline's, Kafka's and Cassandra's JVMs, PostgreSQL's backends), and the loss
// check: every accepted reading stored once, every episode once. Last, the deliverer (with the gateway,
// where the webhooks are registered): deliveries/s to 1,000 endpoints and the notification latency.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import os, { tmpdir } from "node:os"
import { join } from "node:path"
import { freePort as freePortEffect } from "@dexmon/ports"
import cassandra from "cassandra-driver"
import { Effect } from "effect"
import { Kafka, logLevel } from "kafkajs"
import * as Harness from "../infra/Harness.ts"
import { readState } from "../infra/State.ts"
import { runDeliveries } from "./e2e/delivery.ts"
import { type Load, type PhaseContext, type PhaseResult, type Pipeline, runPhase } from "./e2e/phase.ts"
import { lifetimePeakMb, type Measured, measureWindow } from "./e2e/proc.ts"
import { printReport } from "./e2e/report.ts"
import { caughtUp, openSql, type Sql } from "./e2e/stores.ts"
import { dexmonEnvironment, type Service, startDexmon, startRaw } from "./e2e/topology.ts"
import type { Shape } from "./e2e/workload.ts"

Harness.hideKafkajsTimerWarning()

const PHASE_SECONDS = Number(process.env.BENCH_PHASE_SECONDS ?? 30)
const SENSORS = Number(process.env.BENCH_SENSORS ?? 5_000)
const BACKFILL_SENSORS = Number(process.env.BENCH_BACKFILL_SENSORS ?? 500)
const DRAIN_SECONDS = Number(process.env.BENCH_DRAIN_SECONDS ?? 300)
const PHASES = new Set((process.env.BENCH_PHASES ?? "single,batch100,backfill,open50,delivery").split(","))
const WEBHOOK_ENDPOINTS = Number(process.env.BENCH_WEBHOOK_ENDPOINTS ?? 1_000)
const PARTITIONS = 8
const DAY_OF_READINGS = 288

const freePort = () => Effect.runPromise(freePortEffect)

const main = async () => {
  const servers = await Harness.up(["kafka", "cassandra", "postgres"])
  const brokers = servers.KAFKA_BROKERS!
  const contactPoints = servers.CASSANDRA_CONTACT_POINTS!
  const dataCenter = servers.CASSANDRA_LOCAL_DC ?? "datacenter1"
  const serverUrl = process.env.DATABASE_URL || servers.DATABASE_URL || "postgres://postgres@127.0.0.1:5432/postgres"
  const state = readState()

  const run = `e2e${Date.now().toString(36)}`
  const database = `dexmon_${run}`
  const keyspace = `dexmon_${run}`
  const prefix = `${run}.`
  const databaseUrl = (() => {
    const url = new URL(serverUrl)
    url.pathname = `/${database}`
    return url.toString()
  })()
  const dataDir = mkdtempSync(join(tmpdir(), "dexmon-e2e-"))

  const admin = openSql(serverUrl, 1)
  await admin.run((sql) => sql.unsafe(`CREATE DATABASE ${database}`))
  const session = new cassandra.Client({ contactPoints: contactPoints.split(","), localDataCenter: dataCenter })
  await session.connect()
  const kafkaAdmin = new Kafka({
    clientId: "bench-e2e",
    brokers: brokers.split(","),
    logLevel: logLevel.NOTHING
  }).admin()
  await kafkaAdmin.connect()

  const started: Array<Service> = []
  const timers: Array<NodeJS.Timeout> = []
  let sql: Sql | undefined
  try {
    const settings = { brokers, databaseUrl, contactPoints, dataCenter, keyspace, prefix, dataDir }
    const dexmon = await startDexmon(["receiver", "processor", "notifier"], dexmonEnvironment(settings), freePort)
    started.push(...dexmon)
    sql = openSql(databaseUrl, 2)

    // The baseline's table, topic and alert table: glucose_readings' shape and key, the events topic's partitions.
    const now = Date.now()
    await sql.run((s) =>
      s.unsafe(`CREATE TABLE raw_readings (LIKE glucose_readings INCLUDING ALL) PARTITION BY RANGE ("timestamp")`)
    )
    await sql.run((s) =>
      s.unsafe(
        `CREATE TABLE raw_readings_run PARTITION OF raw_readings FOR VALUES FROM ('${new Date(now - 3 * 86_400_000).toISOString()}') TO ('${new Date(now + 3 * 86_400_000).toISOString()}')`
      )
    )
    await session.execute(
      `CREATE TABLE IF NOT EXISTS ${keyspace}.raw_alerts (
        user_id text, timestamp timestamp, alert_id uuid, sensor_id text, glucose_value double, alert_type text, status text,
        PRIMARY KEY ((user_id), timestamp, alert_id)
      ) WITH CLUSTERING ORDER BY (timestamp DESC, alert_id DESC)`
    )
    const rawTopic = `${prefix}raw.events`
    await kafkaAdmin.createTopics({ waitForLeaders: true, topics: [{ topic: rawTopic, numPartitions: PARTITIONS }] })
    const raw = await startRaw(
      { ...settings, topic: rawTopic, table: "raw_readings", alertsTable: "raw_alerts", group: `${prefix}raw` },
      freePort
    )
    started.push(...raw)

    // The servers' processes: the JVMs the harness runs, and the PostgreSQL backends connected to the run's
    // database (the machine's server serves other work too: its other backends are not this run's).
    let backends: ReadonlyArray<number> = []
    const refreshBackends = async () => {
      const rows = await sql!.run(
        (s) => s<{ pid: number }>`SELECT pid FROM pg_stat_activity WHERE datname = ${database}`
      )
      backends = rows.map((row) => Number(row.pid))
    }
    await refreshBackends()
    timers.push(setInterval(() => void refreshBackends().catch(() => undefined), 1_000))
    const serverGroups: Array<Measured> = [
      ...(state.kafka === undefined ? [] : [{ name: "kafka", pids: () => [state.kafka!.pid] }]),
      ...(state.cassandra === undefined ? [] : [{ name: "cassandra", pids: () => [state.cassandra!.pid] }]),
      { name: "postgres", pids: () => backends }
    ]
    const own = (services: ReadonlyArray<Service>) =>
      services.map((service) => ({ name: service.name, pids: () => [service.pid] }))
    const pipelines: Array<Pipeline> = [
      {
        system: "dexmon",
        baseUrl: `http://127.0.0.1:${dexmon[0]!.port}`,
        stores: { readingsTable: "glucose_readings", alertsTable: `${keyspace}.glucose_alerts` },
        topic: `${prefix}glucose.events`,
        consumerGroups: [`${prefix}processor`, `${prefix}notifier`],
        processes: dexmon,
        groups: [...own(dexmon), ...serverGroups]
      },
      {
        system: "raw",
        baseUrl: `http://127.0.0.1:${raw[0]!.port}`,
        stores: { readingsTable: "raw_readings", alertsTable: `${keyspace}.raw_alerts` },
        topic: rawTopic,
        consumerGroups: [`${prefix}raw`],
        processes: raw,
        groups: [...own(raw), ...serverGroups]
      }
    ]

    const results: Array<PhaseResult> = []
    const context = {
      run,
      sql,
      session,
      kafkaAdmin,
      phaseSeconds: PHASE_SECONDS,
      drainSeconds: DRAIN_SECONDS
    } satisfies PhaseContext
    const phase = (pipeline: Pipeline, name: string, shape: Shape, sensors: number, load: Load) =>
      runPhase(context, pipeline, name, shape, sensors, load)

    const single: Shape = { kind: "single" }
    for (const pipeline of pipelines) {
      // Warm-up: connections, JIT, the consumers' group joins; checks the pipeline end to end.
      const warm = await phase(pipeline, "warmup", single, 500, { connections: 16, amount: 500 })
      if (warm.lost > 0) throw new Error(`${pipeline.system}: the warm-up lost ${warm.lost} readings`)
    }
    if (PHASES.has("single"))
      for (const pipeline of pipelines)
        results.push(await phase(pipeline, "single", single, SENSORS, { connections: 64, prime: true }))
    if (PHASES.has("batch100"))
      for (const pipeline of pipelines)
        results.push(
          await phase(pipeline, "batch100", { kind: "batch", size: 100 }, SENSORS, { connections: 32, prime: true })
        )
    if (PHASES.has("backfill"))
      for (const pipeline of pipelines)
        results.push(
          await phase(pipeline, "backfill", { kind: "backfill", size: DAY_OF_READINGS }, BACKFILL_SENSORS, {
            connections: 16,
            amount: BACKFILL_SENSORS,
            prime: true
          })
        )
    // Half of DexMon's single-post maximum of this run (BENCH_OPEN_RATE, in requests/s, without that phase).
    const dexmonMax = results.find((r) => r.phase === "single" && r.system === "dexmon")?.requestsPerSecond
    const rate = Math.max(
      1,
      Math.round(dexmonMax === undefined ? Number(process.env.BENCH_OPEN_RATE ?? 50) : dexmonMax / 2)
    )
    if (PHASES.has("open50"))
      for (const pipeline of pipelines)
        results.push(await phase(pipeline, "open50", single, SENSORS, { connections: 128, rate, prime: true }))

    // The deliverer's phase: the gateway registers the endpoints, the deliverer (started once the backlog is
    // decided) delivers.
    const deliveryPhase = async () => {
      const gateway = await startDexmon(["gateway"], dexmonEnvironment(settings), freePort)
      started.push(...gateway)
      const deliverer: Array<Service> = []
      const window = measureWindow([
        ...own([...dexmon, ...gateway]),
        { name: "deliverer", pids: () => deliverer.map((service) => service.pid) },
        ...serverGroups
      ])
      const result = await runDeliveries({
        gatewayUrl: `http://127.0.0.1:${gateway[0]!.port}`,
        receiverUrl: pipelines[0]!.baseUrl,
        session,
        byIdTable: `${keyspace}.glucose_alerts_by_id`,
        prefix: `${run}-dexmon-delivery`,
        endpoints: WEBHOOK_ENDPOINTS,
        timeoutSeconds: DRAIN_SECONDS,
        startDeliverer: async () => {
          const [service] = await startDexmon(["deliverer"], dexmonEnvironment(settings), freePort)
          deliverer.push(service!)
          started.push(service!)
        },
        notifierCaughtUp: () => caughtUp(kafkaAdmin, `${prefix}glucose.events`, [`${prefix}notifier`])
      })
      return { ...result, usage: window.stop() }
    }
    const delivery = PHASES.has("delivery") ? await deliveryPhase() : undefined

    const peaks = Object.fromEntries(started.map((service) => [service.name, lifetimePeakMb(service.pid)] as const))
    const cpus = os.cpus()
    const machine = `${cpus[0]?.model} × ${cpus.length}, Node ${process.version}, ${new Date().toISOString()}`
    printReport(results, peaks, machine, delivery)
    const out = process.env.BENCH_OUT ?? join(tmpdir(), `e2e-${new Date().toISOString().slice(0, 10)}.json`)
    writeFileSync(
      out,
      JSON.stringify(
        {
          machine,
          phaseSeconds: PHASE_SECONDS,
          sensors: SENSORS,
          results,
          delivery,
          lifetimePeakRssMb: peaks
        },
        null,
        2
      )
    )
    console.log(`\nfigures: ${out}`)
  } finally {
    for (const timer of timers) clearInterval(timer)
    await Promise.all(started.map((service) => service.stop()))
    await sql?.close()
    await kafkaAdmin
      .deleteTopics({ topics: (await kafkaAdmin.listTopics()).filter((topic) => topic.startsWith(prefix)) })
      .catch(() => undefined)
    await kafkaAdmin.disconnect()
    await session.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`).catch(() => undefined)
    await session.shutdown()
    await admin.run((s) => s.unsafe(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`)).catch(() => undefined)
    await admin.close()
    rmSync(dataDir, { recursive: true, force: true })
  }
}

await main()
