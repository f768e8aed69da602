// Receiver throughput on a real Kafka broker, next to a raw kafkajs producer
// sending the same records with the same settings (idempotent, acks=all, one
// request in flight), in the same run on the same machine.
//
//   pnpm bench:ingest            (starts Kafka with the harness unless KAFKA_BROKERS is set)
//
// Prints readings/s accepted for single and batched posts, HTTP latency
// percentiles, the receiver's peak memory, and the ratios to the baselines.
import { type ChildProcess, spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { Kafka, logLevel } from "kafkajs"
import * as Harness from "../infra/Harness.ts"

const SINGLE_POSTS = Number(process.env.BENCH_SINGLE_POSTS ?? 5_000)
const SINGLE_CONCURRENCY = 64
const BATCH_POSTS = Number(process.env.BENCH_BATCH_POSTS ?? 100)
const BATCH_SIZE = 1_000
const BATCH_CONCURRENCY = 8

const freePort = () =>
  new Promise<number>((done) => {
    const server = createServer()
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => done(typeof address === "object" && address !== null ? address.port : 0))
    })
  })

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!

const reading = (i: number, now: number) => ({
  sensor_id: `bench-${i % 500}`,
  timestamp: new Date(now - 3_600_000 + (i % 3_000) * 1_000).toISOString(),
  glucose_value: 60 + (i % 200)
})

/** Runs `count` tasks with at most `concurrency` at a time; returns each task's latency in ms. */
const drive = async (count: number, concurrency: number, task: (i: number) => Promise<void>) => {
  const latencies: Array<number> = []
  let next = 0
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++
        const started = performance.now()
        await task(i)
        latencies.push(performance.now() - started)
      }
    })
  )
  return latencies.sort((a, b) => a - b)
}

const peakRssMb = (pid: number) => {
  const status = readFileSync(`/proc/${pid}/status`, "utf8")
  return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024
}

const main = async () => {
  const alreadyRunning = Object.keys(Harness.environment()).length > 0 || process.env.KAFKA_BROKERS !== undefined
  const { KAFKA_BROKERS: brokers } = await Harness.up(["kafka"])
  const prefix = `bench-${Date.now().toString(36)}.`
  const dataDir = mkdtempSync(join(tmpdir(), "dexmon-bench-"))
  const port = await freePort()
  const receiver: ChildProcess = spawn(
    process.execPath,
    [resolve(import.meta.dirname, "../services/receiver/src/main.ts")],
    {
      env: {
        PATH: process.env.PATH,
        PORT: String(port),
        KAFKA_BROKERS: brokers,
        DEXMON_TOPIC_PREFIX: prefix,
        DEXMON_DATA_DIR: dataDir,
        DEXMON_EMBEDDED_PG_PORT: String(await freePort()),
        DEXMON_LOG_FORMAT: "json",
        // The benchmark posts as one user as fast as it can: the per-user rate limit would measure itself.
        DEXMON_RATE_LIMIT_PER_SECOND: "0"
      },
      stdio: "ignore"
    }
  )
  const baseUrl = `http://127.0.0.1:${port}`
  try {
    for (let i = 0; ; i++) {
      const ok = await fetch(`${baseUrl}/readyz`).then(
        (r) => r.ok,
        () => false
      )
      if (ok) break
      if (i > 600) throw new Error("the receiver did not become ready")
      await new Promise((r) => setTimeout(r, 100))
    }
    const now = Date.now()
    const post = async (path: string, body: unknown) => {
      const response = await fetch(`${baseUrl}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body)
      })
      if (response.status !== 202) throw new Error(`${response.status} ${await response.text()}`)
      await response.arrayBuffer()
    }

    // Warm-up: connections, JIT, topic metadata.
    await drive(500, SINGLE_CONCURRENCY, (i) => post("/api/v1/glucose/sensor", reading(i, now)))

    let started = performance.now()
    const singleLatency = await drive(SINGLE_POSTS, SINGLE_CONCURRENCY, (i) =>
      post("/api/v1/glucose/sensor", reading(i, now))
    )
    const singleSeconds = (performance.now() - started) / 1000

    started = performance.now()
    const batchLatency = await drive(BATCH_POSTS, BATCH_CONCURRENCY, (i) =>
      post("/api/v1/glucose/sensor", {
        readings: Array.from({ length: BATCH_SIZE }, (_, j) => reading(i * BATCH_SIZE + j, now))
      })
    )
    const batchSeconds = (performance.now() - started) / 1000
    const receiverPeakMb = peakRssMb(receiver.pid!)

    // The baselines: the same event values, keys and headers, straight from kafkajs.
    const kafka = new Kafka({ clientId: "bench-raw", brokers: brokers!.split(","), logLevel: logLevel.NOTHING })
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false })
    await producer.connect()
    const topic = `${prefix}glucose.events`
    const message = (i: number) => {
      const r = reading(i, now)
      const eventId = randomUUID()
      return {
        key: r.sensor_id,
        value: JSON.stringify({
          schema_version: 1,
          event_id: eventId,
          sensor_id: r.sensor_id,
          user_id: "dev-user",
          timestamp: r.timestamp,
          glucose_value: r.glucose_value,
          source: "SENSOR",
          received_at: new Date().toISOString()
        }),
        headers: {
          "content-type": "application/json",
          "dexmon-schema": "glucose-event",
          "dexmon-schema-version": "1",
          "dexmon-event-id": eventId
        }
      }
    }
    // One record per request, one request at a time: what a receiver without batching pays per reading.
    started = performance.now()
    const rawSingleLatency = await drive(SINGLE_POSTS, 1, (i) =>
      producer.send({ topic, acks: -1, messages: [message(i)] }).then(() => {})
    )
    const rawSingleSeconds = (performance.now() - started) / 1000
    // The same number of records as the batched posts, 1,000 per request.
    started = performance.now()
    await drive(BATCH_POSTS, 1, (i) =>
      producer
        .send({ topic, acks: -1, messages: Array.from({ length: BATCH_SIZE }, (_, j) => message(i * BATCH_SIZE + j)) })
        .then(() => {})
    )
    const rawBatchSeconds = (performance.now() - started) / 1000
    await producer.disconnect()

    const rate = (n: number, s: number) => Math.round(n / s)
    const singleRate = rate(SINGLE_POSTS, singleSeconds)
    const batchRate = rate(BATCH_POSTS * BATCH_SIZE, batchSeconds)
    const rawSingleRate = rate(SINGLE_POSTS, rawSingleSeconds)
    const rawBatchRate = rate(BATCH_POSTS * BATCH_SIZE, rawBatchSeconds)
    const ms = (v: number) => `${v.toFixed(1)} ms`
    console.log(
      `\nReceiver ingest on Kafka ${brokers} (${SINGLE_POSTS} single posts at concurrency ${SINGLE_CONCURRENCY}; ${BATCH_POSTS} posts of ${BATCH_SIZE} at concurrency ${BATCH_CONCURRENCY})`
    )
    console.table([
      {
        case: "receiver, single posts",
        "readings/s": singleRate,
        p50: ms(percentile(singleLatency, 50)),
        p95: ms(percentile(singleLatency, 95)),
        p99: ms(percentile(singleLatency, 99))
      },
      {
        case: "raw kafkajs, 1 record per send",
        "readings/s": rawSingleRate,
        p50: ms(percentile(rawSingleLatency, 50)),
        p95: ms(percentile(rawSingleLatency, 95)),
        p99: ms(percentile(rawSingleLatency, 99))
      },
      {
        case: "receiver, batches of 1,000",
        "readings/s": batchRate,
        p50: ms(percentile(batchLatency, 50)),
        p95: ms(percentile(batchLatency, 95)),
        p99: ms(percentile(batchLatency, 99))
      },
      { case: "raw kafkajs, 1,000 records per send", "readings/s": rawBatchRate, p50: "", p95: "", p99: "" }
    ])
    console.log(`ratio receiver/raw, single: ${(singleRate / rawSingleRate).toFixed(2)}`)
    console.log(`ratio receiver/raw, batched: ${(batchRate / rawBatchRate).toFixed(2)}`)
    console.log(`receiver peak memory (VmHWM): ${receiverPeakMb.toFixed(0)} MB`)
  } finally {
    receiver.kill("SIGTERM")
    await new Promise((r) => receiver.once("exit", r))
    rmSync(dataDir, { recursive: true, force: true })
    if (!alreadyRunning) await Harness.down()
  }
}

await main()
