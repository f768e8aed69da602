// The raw baseline pipeline of `pnpm bench:e2e`, as two child processes beside DexMon's:
//
//   node benchmarks/e2e/raw.ts receiver   bare node:http → kafkajs (DexMon's producer settings: idempotent,
//                                         acks=all, one request in flight); requests that arrive while a
//                                         send is in flight go together in the next one
//   node benchmarks/e2e/raw.ts consumer   a bare kafkajs consumer (DexMon's consumer settings, slices of
//                                         500) → the readings store's unnest upsert into a table of
//                                         glucose_readings' shape, one plain Cassandra INSERT per
//                                         urgent-low reading, then the commit
//
// Configured by RAW_* variables (see `rawEnvironment` in topology.ts). No validation beyond the shape,
// no ownership, settings, dedup state or episodes: what any pipeline must do, and nothing else.
import { randomUUID } from "node:crypto"
import { createServer } from "node:http"
import { contentHash, deriveAlertId } from "@dexmon/domain"
import { Database } from "@dexmon/ports"
import cassandra from "cassandra-driver"
import { Effect, ManagedRuntime, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { type EachBatchPayload, Kafka, logLevel, type Message } from "kafkajs"

process.removeAllListeners("warning")

const env = (name: string) => {
  const value = process.env[name]
  if (value === undefined) throw new Error(`${name} is not set`)
  return value
}

const URGENT_LOW_AT = 55
const SLICE = 500
const WRITE_CONCURRENCY = 32
/** Records per produce request at most: well under the topic's max.message.bytes with readings of ~300 bytes. */
const MAX_RECORDS_PER_SEND = 2_000

const kafka = () =>
  new Kafka({ clientId: "bench-raw", brokers: env("KAFKA_BROKERS").split(","), logLevel: logLevel.NOTHING })

interface Waiting {
  readonly messages: Array<Message>
  readonly done: (error?: unknown) => void
}

const receiver = async () => {
  const topic = env("RAW_TOPIC")
  const producer = kafka().producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false })
  await producer.connect()

  const queue: Array<Waiting> = []
  let sending = false
  const flush = async () => {
    sending = true
    while (queue.length > 0) {
      const taken: Array<Waiting> = []
      let records = 0
      while (queue.length > 0 && (taken.length === 0 || records + queue[0]!.messages.length <= MAX_RECORDS_PER_SEND)) {
        const next = queue.shift()!
        records += next.messages.length
        taken.push(next)
      }
      try {
        await producer.send({ topic, acks: -1, messages: taken.flatMap((waiting) => waiting.messages) })
        for (const waiting of taken) waiting.done()
      } catch (error) {
        for (const waiting of taken) waiting.done(error ?? new Error("send failed"))
      }
    }
    sending = false
  }
  const append = (messages: Array<Message>) =>
    new Promise<void>((resolve, reject) => {
      queue.push({ messages, done: (error) => (error === undefined ? resolve() : reject(error)) })
      if (!sending) void flush()
    })

  const answer = (res: import("node:http").ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body)
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) })
    res.end(text)
  }

  const server = createServer((req, res) => {
    if (req.method === "GET" && req.url === "/readyz") return answer(res, 200, { ready: true })
    if (req.method !== "POST" || req.url !== "/api/v1/glucose/sensor") return answer(res, 404, { _tag: "NotFound" })
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => {
      let readings: Array<{ sensor_id: unknown; timestamp: unknown; glucose_value: unknown }>
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8"))
        readings = Array.isArray(body.readings) ? body.readings : [body]
      } catch {
        return answer(res, 400, { _tag: "ValidationError" })
      }
      const user = String(req.headers["x-user-id"] ?? "dev-user")
      const receivedAt = new Date().toISOString()
      const eventIds: Array<string> = []
      const messages: Array<Message> = []
      for (const reading of readings) {
        if (
          typeof reading.sensor_id !== "string" ||
          typeof reading.timestamp !== "string" ||
          typeof reading.glucose_value !== "number"
        )
          return answer(res, 400, { _tag: "ValidationError" })
        const eventId = randomUUID()
        eventIds.push(eventId)
        messages.push({
          key: reading.sensor_id,
          value: JSON.stringify({
            schema_version: 1,
            event_id: eventId,
            sensor_id: reading.sensor_id,
            user_id: user,
            timestamp: reading.timestamp,
            glucose_value: reading.glucose_value,
            source: "SENSOR",
            received_at: receivedAt
          }),
          headers: {
            "content-type": "application/json",
            "dexmon-schema": "glucose-event",
            "dexmon-schema-version": "1",
            "dexmon-event-id": eventId
          }
        })
      }
      append(messages).then(
        () => answer(res, 202, { accepted: messages.length, event_ids: eventIds }),
        () => answer(res, 503, { _tag: "ServiceUnavailable" })
      )
    })
  })
  server.keepAliveTimeout = 5_000
  server.listen(Number(env("PORT")), "127.0.0.1")
  process.once("SIGTERM", () => {
    server.close()
    producer.disconnect().finally(() => process.exit(0))
  })
}

interface RawEvent {
  readonly event_id: string
  readonly sensor_id: string
  readonly user_id: string
  readonly timestamp: string
  readonly glucose_value: number
}

const consumer = async () => {
  const topic = env("RAW_TOPIC")
  const table = env("RAW_TABLE")
  const alertsTable = `${env("CASSANDRA_KEYSPACE")}.${env("RAW_ALERTS_TABLE")}`
  const runtime = ManagedRuntime.make(Database.layerPgClient(Redacted.make(env("DATABASE_URL")), { maxConnections: 4 }))
  const session = new cassandra.Client({
    contactPoints: env("CASSANDRA_CONTACT_POINTS").split(","),
    localDataCenter: env("CASSANDRA_LOCAL_DC"),
    queryOptions: { consistency: cassandra.types.consistencies.localQuorum, prepare: true }
  })
  await session.connect()
  const insertAlert = `INSERT INTO ${alertsTable} (user_id, timestamp, alert_id, sensor_id, glucose_value, alert_type, status)
    VALUES (?, ?, ?, ?, ?, 'URGENT_LOW', 'OPEN')`

  // The readings store's upsert (SqlReadingStore's `upsertRound`): the same unnest, conflict rule, version and etag.
  const upsert = (events: ReadonlyArray<RawEvent>, partition: number, offsets: ReadonlyArray<string>) =>
    runtime.runPromise(
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const content = events.map((e) =>
          contentHash({
            sensor_id: e.sensor_id,
            timestamp: e.timestamp,
            glucose_value: e.glucose_value,
            source: "SENSOR"
          } as never)
        )
        yield* sql.withTransaction(sql`
          WITH incoming AS (
            SELECT * FROM unnest(
              ${events.map((e) => e.sensor_id)}::text[],
              ${events.map((e) => e.user_id)}::text[],
              ${events.map((e) => e.timestamp)}::timestamptz[],
              ${events.map((e) => String(e.glucose_value))}::text[]::float8[],
              ${events.map(() => "SENSOR")}::text[],
              ${events.map((e) => e.event_id)}::uuid[],
              ${events.map(() => String(partition))}::text[]::int4[],
              ${offsets}::text[]::int8[],
              ${content}::text[]
            ) AS t(sensor_id, user_id, "timestamp", glucose_value, source, event_id, event_partition, event_offset,
              content_hash)
          )
          INSERT INTO ${sql.literal(table)} AS r (sensor_id, user_id, "timestamp", glucose_value, source, version, etag,
            content_hash, event_id, event_partition, event_offset, created_at, updated_at)
          SELECT sensor_id, user_id, "timestamp", glucose_value, source, 1, content_hash || '-1', content_hash, event_id,
            event_partition, event_offset, now(), now()
          FROM incoming
          ORDER BY sensor_id, "timestamp"
          ON CONFLICT (sensor_id, "timestamp") DO UPDATE SET
            glucose_value = EXCLUDED.glucose_value,
            source = EXCLUDED.source,
            content_hash = EXCLUDED.content_hash,
            event_id = EXCLUDED.event_id,
            event_partition = EXCLUDED.event_partition,
            event_offset = EXCLUDED.event_offset,
            version = r.version + (r.content_hash <> EXCLUDED.content_hash)::int,
            etag = EXCLUDED.content_hash || '-' || (r.version + (r.content_hash <> EXCLUDED.content_hash)::int),
            updated_at = CASE WHEN r.content_hash <> EXCLUDED.content_hash THEN now() ELSE r.updated_at END
          WHERE r.user_id = EXCLUDED.user_id AND (
            (r.content_hash = EXCLUDED.content_hash AND EXCLUDED.event_offset > r.event_offset)
            OR (r.content_hash <> EXCLUDED.content_hash AND EXCLUDED.event_offset > r.event_offset))
          RETURNING 1`)
      })
    )

  const writeAlerts = async (events: ReadonlyArray<RawEvent>) => {
    const lows = events.filter((e) => e.glucose_value <= URGENT_LOW_AT)
    for (let i = 0; i < lows.length; i += WRITE_CONCURRENCY) {
      await Promise.all(
        lows
          .slice(i, i + WRITE_CONCURRENCY)
          .map((e) =>
            session.execute(
              insertAlert,
              [
                e.user_id,
                new Date(e.timestamp),
                deriveAlertId(e.sensor_id, Date.parse(e.timestamp), "URGENT_LOW"),
                e.sensor_id,
                e.glucose_value
              ],
              { isIdempotent: true }
            )
          )
      )
    }
  }

  const group = kafka().consumer({
    groupId: env("RAW_GROUP"),
    allowAutoTopicCreation: false,
    maxBytesPerPartition: 1_048_576,
    sessionTimeout: 30_000,
    heartbeatInterval: 3_000
  })
  const eachBatch = async ({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload) => {
    for (let start = 0; start < batch.messages.length && isRunning() && !isStale(); start += SLICE) {
      const slice = batch.messages.slice(start, start + SLICE)
      const events = slice.map((message) => JSON.parse(message.value?.toString("utf8") ?? "null") as RawEvent)
      await upsert(
        events,
        batch.partition,
        slice.map((message) => message.offset)
      )
      await writeAlerts(events)
      const last = slice[slice.length - 1]!.offset
      await group.commitOffsets([{ topic, partition: batch.partition, offset: String(Number(last) + 1) }])
      resolveOffset(last)
      await heartbeat()
    }
  }
  await group.connect()
  await group.subscribe({ topic, fromBeginning: true })
  await group.run({ autoCommit: false, eachBatchAutoResolve: false, partitionsConsumedConcurrently: 1, eachBatch })
  console.log("ready")
  process.once("SIGTERM", () => {
    group
      .disconnect()
      .then(() => session.shutdown())
      .then(() => runtime.dispose())
      .finally(() => process.exit(0))
  })
}

const role = process.argv[2]
if (role === "receiver") await receiver()
else if (role === "consumer") await consumer()
else throw new Error(`unknown role ${role}: receiver or consumer`)
