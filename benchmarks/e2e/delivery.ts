// The deliverer's phase: 1,000 users, each with one webhook endpoint (a distinct path on a node:http
// sink in this process), each with a sensor that goes urgently low and clears, round after round. The
// notifier decides one notification per episode; the deliverer POSTs it to the user's endpoint.
// Measured: deliveries/s (from the first reading posted to the last delivery received) and the
// notification latency, from the episode's first appearance in Cassandra (polled by this process every
// 50 ms in glucose_alerts_by_id) to the first webhook received for it.
import { createServer, type Server } from "node:http"
import { deriveAlertId } from "@dexmon/domain"
import type cassandra from "cassandra-driver"

interface Received {
  readonly at: number
  readonly alertId: string
  readonly deliveryId: string
}

/** A webhook receiver: answers 200 at once and keeps each delivery's arrival (epoch ms) and alert. */
export const startSink = async () => {
  const received: Array<Received> = []
  const paths = new Set<string>()
  const server: Server = createServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => {
      const at = Date.now()
      res.writeHead(200).end()
      try {
        const event = JSON.parse(Buffer.concat(chunks).toString("utf8"))
        paths.add(req.url ?? "")
        received.push({ at, alertId: event.alert_id, deliveryId: String(req.headers["dexmon-delivery"]) })
      } catch {
        // A test delivery or a body of another shape: not one of the run's notifications.
      }
    })
  })
  await new Promise<void>((listening) => server.listen(0, "127.0.0.1", listening))
  const address = server.address()
  const port = typeof address === "object" && address !== null ? address.port : 0
  return { port, received, paths, close: () => new Promise<void>((closed) => server.close(() => closed())) }
}

const inBatches = async <A>(items: ReadonlyArray<A>, size: number, task: (item: A) => Promise<void>) => {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(task))
}

export interface DeliveryResult {
  readonly endpoints: number
  /** The backlog: every endpoint's episode decided before the deliverer starts. */
  readonly backlog: {
    readonly told: number
    /** Distinct deliveries (DexMon-Delivery), webhook requests, and requests repeating a delivery. */
    readonly deliveries: number
    readonly received: number
    readonly duplicates: number
    /** From the deliverer's start (ready) to the last delivery. */
    readonly seconds: number
    readonly deliveriesPerSecond: number
  }
  /** Live: one more episode per endpoint with the deliverer running; episode stored → first webhook. */
  readonly live: {
    readonly told: number
    readonly latencyP50: number
    readonly latencyP99: number
  }
  readonly distinctEndpoints: number
}

const sleep = (ms: number) => new Promise((resume) => setTimeout(resume, ms))

/**
 * Registers one webhook per user through the gateway. Then, with the deliverer not yet running, posts a
 * round to the receiver (a reading of 50 mg/dL for every user's sensor: an episode opens and is told;
 * then two of 120: it ends), waits until every episode is stored, starts the deliverer and times the
 * backlog's delivery. Then posts a second round and times each episode from stored to delivered.
 */
export const runDeliveries = async (options: {
  readonly gatewayUrl: string
  readonly receiverUrl: string
  readonly session: cassandra.Client
  readonly byIdTable: string
  readonly prefix: string
  readonly endpoints: number
  readonly timeoutSeconds: number
  readonly startDeliverer: () => Promise<void>
  /** Whether the notifier has committed every event posted so far (it commits only what it decided and stored). */
  readonly notifierCaughtUp: () => Promise<boolean>
}): Promise<DeliveryResult> => {
  const sink = await startSink()
  let polling = true
  let poller: Promise<void> = Promise.resolve()
  try {
    const users = Array.from({ length: options.endpoints }, (_, i) => ({
      user: `${options.prefix}-user-${i}`,
      sensor: `${options.prefix}-${i}`,
      path: `/hook/${i}`
    }))
    await inBatches(users, 16, async ({ user, path }) => {
      const response = await fetch(`${options.gatewayUrl}/api/v1/webhooks`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-user-id": user },
        body: JSON.stringify({ url: `http://127.0.0.1:${sink.port}${path}`, kinds: ["URGENT_LOW"] })
      })
      if (response.status !== 201) throw new Error(`webhook registration: ${response.status} ${await response.text()}`)
    })

    const post = (value: number, timestamp: number) =>
      inBatches(users, 32, async ({ user, sensor }) => {
        const response = await fetch(`${options.receiverUrl}/api/v1/glucose/sensor`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-user-id": user },
          body: JSON.stringify({
            sensor_id: sensor,
            timestamp: new Date(timestamp).toISOString(),
            glucose_value: value
          })
        })
        if (response.status !== 202) throw new Error(`post: ${response.status} ${await response.text()}`)
        await response.arrayBuffer()
      })

    // Each episode's first appearance in Cassandra, polled by id.
    const storedAt = new Map<string, number>()
    const pending = new Set<string>()
    poller = (async () => {
      while (polling) {
        const ids = [...pending]
        for (let i = 0; i < ids.length; i += 100) {
          const result = await options.session.execute(
            `SELECT alert_id FROM ${options.byIdTable} WHERE alert_id IN ?`,
            [ids.slice(i, i + 100)],
            { prepare: true }
          )
          const now = Date.now()
          for (const row of result.rows) {
            const id = String(row.get("alert_id"))
            pending.delete(id)
            storedAt.set(id, now)
          }
        }
        await sleep(50)
      }
    })()

    // Readings a second apart, ending about now: live (not backfilled), so every episode is told.
    let timestamp = Date.now() - 3_000
    const postRound = async () => {
      timestamp = Math.max(timestamp, Date.now() - 3_000)
      const ids = new Set<string>()
      for (const value of [50, 120, 120]) {
        if (value === 50)
          for (const { sensor } of users) {
            const id = deriveAlertId(sensor, timestamp, "URGENT_LOW")
            ids.add(id)
            pending.add(id)
          }
        await post(value, timestamp)
        timestamp += 1_000
      }
      return ids
    }
    const deadline = () => Date.now() + options.timeoutSeconds * 1000
    const waitUntil = async (done: () => boolean | Promise<boolean>) => {
      const until = deadline()
      while (!(await done()) && Date.now() < until) await sleep(100)
    }
    /** Each episode is told twice: when it opens and when it ends (the all-clear). */
    const deliveriesOf = (ids: Set<string>) =>
      new Set(sink.received.filter((r) => ids.has(r.alertId)).map((r) => r.deliveryId)).size
    const toldOf = (ids: Set<string>) => new Set(sink.received.filter((r) => ids.has(r.alertId)).map((r) => r.alertId))

    const backlogIds = await postRound()
    await waitUntil(() => [...backlogIds].every((id) => storedAt.has(id)))
    // The episodes' ends are decided after their starts: the backlog is whole once the notifier has committed
    // every event posted, ends included.
    await waitUntil(() => options.notifierCaughtUp().catch(() => false))
    await options.startDeliverer()
    const deliveringFrom = Date.now()
    await waitUntil(() => deliveriesOf(backlogIds) >= 2 * options.endpoints)
    const backlog = [...sink.received]
    const backlogDeliveries = new Set(backlog.map((r) => r.deliveryId)).size
    const backlogSeconds = (Math.max(...backlog.map((r) => r.at)) - deliveringFrom) / 1000

    const liveIds = await postRound()
    await waitUntil(() => toldOf(liveIds).size >= options.endpoints && [...liveIds].every((id) => storedAt.has(id)))
    const firstArrival = new Map<string, number>()
    for (const r of sink.received)
      if (liveIds.has(r.alertId) && !firstArrival.has(r.alertId)) firstArrival.set(r.alertId, r.at)
    const latencies = [...firstArrival]
      .filter(([id]) => storedAt.has(id))
      .map(([id, at]) => at - storedAt.get(id)!)
      .sort((a, b) => a - b)
    const at = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? Number.NaN
    return {
      endpoints: options.endpoints,
      backlog: {
        told: toldOf(backlogIds).size,
        deliveries: backlogDeliveries,
        received: backlog.length,
        duplicates: backlog.length - backlogDeliveries,
        seconds: backlogSeconds,
        deliveriesPerSecond: backlogDeliveries / backlogSeconds
      },
      live: { told: firstArrival.size, latencyP50: at(0.5), latencyP99: at(0.99) },
      distinctEndpoints: sink.paths.size
    }
  } finally {
    polling = false
    await poller
    await sink.close()
  }
}
