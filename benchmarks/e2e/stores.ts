// What the stores hold, read by the benchmark itself (never DexMon's metrics): probe readings polled
// in PostgreSQL and probe alerts in Cassandra to time their arrival, and the counts of the loss check.
import { Database } from "@dexmon/ports"
import type cassandra from "cassandra-driver"
import { Effect, ManagedRuntime, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import type { Admin } from "kafkajs"
import type { Probe } from "./workload.ts"

export const openSql = (url: string, maxConnections = 2) => {
  const runtime = ManagedRuntime.make(Database.layerPgClient(Redacted.make(url), { maxConnections }))
  const run = <A>(query: (sql: SqlClient.SqlClient) => Effect.Effect<A, unknown>) =>
    runtime.runPromise(
      Effect.gen(function* () {
        return yield* query(yield* SqlClient.SqlClient)
      })
    )
  return { run, close: () => runtime.dispose() }
}
export type Sql = ReturnType<typeof openSql>

/** Where one pipeline stores its readings and alerts. */
export interface Stores {
  readonly readingsTable: string
  /** A table of glucose_alerts' key: `((user_id), timestamp, alert_id)`. */
  readonly alertsTable: string
}

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!

export interface Latencies {
  readonly count: number
  readonly missing: number
  readonly p50: number
  readonly p99: number
}

const summarize = (values: Array<number>, missing: number): Latencies => {
  values.sort((a, b) => a - b)
  return { count: values.length, missing, p50: percentile(values, 50), p99: percentile(values, 99) }
}

/**
 * Polls the stores every 50 ms for the probes not seen yet: a reading by its key in PostgreSQL, an
 * alert by its full primary key in Cassandra. A probe's latency is from its request's sending to the
 * first poll that finds it (so up to a poll's period and duration late).
 */
export const watchProbes = (sql: Sql, session: cassandra.Client, stores: Stores) => {
  const readings = new Map<string, Probe>()
  const alerts = new Map<string, Probe>()
  /** Probes of accepted requests: the ones that must appear (an unanswered request's may never). */
  const confirmed = new Set<Probe>()
  let readingTimes: Array<number> = []
  let alertTimes: Array<number> = []
  let running = true
  const selectAlert = `SELECT alert_id FROM ${stores.alertsTable} WHERE user_id = ? AND timestamp = ? AND alert_id = ?`

  const pollReadings = async () => {
    const pending = [...readings.values()]
    if (pending.length === 0) return
    const found = await sql.run(
      (s) => s<{ sensor_id: string; ms: string }>`
        SELECT r.sensor_id, (extract(epoch FROM r."timestamp") * 1000)::bigint::text AS ms
        FROM ${s.literal(stores.readingsTable)} r
        JOIN unnest(${pending.map((p) => p.sensor)}::text[], ${pending.map((p) => new Date(p.timestamp).toISOString())}::timestamptz[])
          AS p(sensor_id, "timestamp") ON r.sensor_id = p.sensor_id AND r."timestamp" = p."timestamp"`
    )
    const now = performance.now()
    for (const row of found) {
      const key = `${row.sensor_id}@${row.ms}`
      const probe = readings.get(key)
      if (probe === undefined) continue
      readings.delete(key)
      readingTimes.push(now - probe.sentAt)
    }
  }

  const pollAlerts = async () => {
    const pending = [...alerts.values()]
    const found = await Promise.all(
      pending.map((probe) =>
        session
          .execute(selectAlert, [probe.user, new Date(probe.timestamp), probe.alertId!], { prepare: true })
          .then((result) => result.rowLength > 0)
      )
    )
    const now = performance.now()
    pending.forEach((probe, i) => {
      if (!found[i]) return
      alerts.delete(probe.alertId!)
      alertTimes.push(now - probe.sentAt)
    })
  }

  const loop = (async () => {
    while (running) {
      await Promise.all([pollReadings(), pollAlerts()]).catch((error) => console.error(`probe poll: ${error}`))
      await new Promise((resume) => setTimeout(resume, 50))
    }
  })()

  return {
    reading: (probe: Probe) => readings.set(`${probe.sensor}@${probe.timestamp}`, probe),
    alert: (probe: Probe) => alerts.set(probe.alertId!, probe),
    confirm: (probe: Probe) => confirmed.add(probe),
    /** The latencies so far, and how many probes of accepted requests were not seen; starts over. */
    take: () => {
      const unseen = (pending: Map<string, Probe>) => [...pending.values()].filter((p) => confirmed.has(p)).length
      const result = {
        stored: summarize(readingTimes, unseen(readings)),
        alert: summarize(alertTimes, unseen(alerts))
      }
      readingTimes = []
      alertTimes = []
      readings.clear()
      alerts.clear()
      confirmed.clear()
      return result
    },
    /** Whether every probe of an accepted request was seen. */
    settled: () => ![...readings.values(), ...alerts.values()].some((probe) => confirmed.has(probe)),
    stop: async () => {
      running = false
      await loop
    }
  }
}
export type ProbeWatch = ReturnType<typeof watchProbes>

/** Whether each consumer group has committed every record of `topic` (consumers commit only what is durable). */
export const caughtUp = async (admin: Admin, topic: string, groups: ReadonlyArray<string>) => {
  const ends = await admin.fetchTopicOffsets(topic)
  const end = ends.reduce((sum, partition) => sum + Number(partition.high), 0)
  for (const groupId of groups) {
    const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] })
    const sum = (committed?.partitions ?? []).reduce((total, p) => total + Math.max(0, Number(p.offset)), 0)
    if (sum < end) return false
  }
  return true
}

const CHUNK = 20_000

/** How many of the given keys are stored, and how many of those were changed after their first write. */
export const storedOf = async (
  sql: Sql,
  table: string,
  keys: { readonly sensors: ReadonlyArray<string>; readonly timestamps: ReadonlyArray<string> }
) => {
  let stored = 0
  let changed = 0
  for (let i = 0; i < keys.sensors.length; i += CHUNK) {
    const [row] = await sql.run(
      (s) => s<{ stored: number; changed: number }>`
        SELECT count(*)::int AS stored, count(*) FILTER (WHERE r.version > 1)::int AS changed
        FROM ${s.literal(table)} r
        JOIN unnest(${keys.sensors.slice(i, i + CHUNK)}::text[], ${keys.timestamps.slice(i, i + CHUNK)}::timestamptz[])
          AS k(sensor_id, "timestamp") ON r.sensor_id = k.sensor_id AND r."timestamp" = k."timestamp"`
    )
    stored += Number(row?.stored ?? 0)
    changed += Number(row?.changed ?? 0)
  }
  return { stored, changed }
}

/** The stored values of `sensors`, each sensor's in timestamp order. */
export const storedValues = async (sql: Sql, table: string, sensors: ReadonlyArray<string>) => {
  const rows = await sql.run(
    (s) => s<{ sensor_id: string; glucose_value: number }>`
      SELECT sensor_id, glucose_value FROM ${s.literal(table)}
      WHERE sensor_id = ANY(${sensors}::text[]) ORDER BY sensor_id, "timestamp"`
  )
  const values = new Map<string, Array<number>>()
  for (const row of rows) {
    const list = values.get(row.sensor_id) ?? []
    list.push(Number(row.glucose_value))
    values.set(row.sensor_id, list)
  }
  return values
}

/** Alert rows of `sensors` (in their owners' partitions), and how many distinct alert ids they hold. */
export const countAlerts = async (
  session: cassandra.Client,
  table: string,
  sensors: ReadonlyArray<{ readonly id: string; readonly user: string }>
) => {
  const wanted = new Set(sensors.map((sensor) => sensor.id))
  const users = [...new Set(sensors.map((sensor) => sensor.user))]
  let rows = 0
  const ids = new Set<string>()
  for (let i = 0; i < users.length; i += 50) {
    const stream = session.stream(
      `SELECT sensor_id, alert_id FROM ${table} WHERE user_id IN ?`,
      [users.slice(i, i + 50)],
      {
        prepare: true,
        fetchSize: 5_000
      }
    )
    for await (const row of stream as unknown as AsyncIterable<cassandra.types.Row>) {
      if (!wanted.has(String(row.get("sensor_id")))) continue
      rows++
      ids.add(String(row.get("alert_id")))
    }
  }
  return { rows, distinct: ids.size }
}
