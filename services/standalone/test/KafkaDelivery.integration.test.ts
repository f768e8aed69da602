import { spawnSync } from "node:child_process"
import { GlucoseEventJson } from "@dexmon/domain"
import { EmbeddedPostgres } from "@dexmon/ports"
import { DexMonClient } from "@dexmon/sdk"
import {
  eventually,
  freshDatabase,
  kcatTool,
  layerEmbeddedPostgresTest,
  makeServiceProcess,
  requiredServer
} from "@dexmon/testing"
import { assert, layer } from "@effect/vitest"
import { Clock, Effect, Fiber, Redacted, Schema } from "effect"
import type { SqlClient } from "effect/sql"

const brokers = requiredServer("KAFKA_BROKERS")
const SENSORS = 100
const KEYS_PER_SENSOR = 50
const MINUTE = 60_000

interface Row {
  readonly sensor_id: string
  readonly timestamp_ms: number
  readonly glucose_value: number
  readonly source: string
  readonly version: number
  readonly etag: string
}

const rowsOf = (sql: SqlClient.SqlClient) =>
  sql<Row>`SELECT sensor_id, (extract(epoch FROM "timestamp") * 1000)::float8 AS timestamp_ms, glucose_value, source,
      version, etag FROM glucose_readings ORDER BY sensor_id, "timestamp"`.pipe(
    // The processor creates the table on start; until then there is nothing.
    Effect.orElseSucceed((): ReadonlyArray<Row> => [])
  )

layer(layerEmbeddedPostgresTest, { timeout: 300_000, excludeTestServices: true })(
  `separate receiver and processors on Kafka at ${brokers}`,
  (it) => {
    it.effect(
      "10,000 concurrent posts for 100 sensors give one row per key, in order; a processor killed with SIGKILL mid-run ends in the same state",
      () =>
        Effect.gen(function* () {
          const server = Redacted.value((yield* EmbeddedPostgres).url)
          const uninterruptedDb = yield* freshDatabase({ server, name: "uninterrupted" })
          const interruptedDb = yield* freshDatabase({ server, name: "interrupted" })

          const common = {
            PATH: process.env.PATH,
            KAFKA_BROKERS: brokers,
            DEXMON_TOPIC_PREFIX: `delivery-${Date.now().toString(36)}.`,
            DEXMON_EVENT_PARTITIONS: "8"
          }
          const receiver = yield* makeServiceProcess("receiver", { ...common, DATABASE_URL: server })
          const uninterrupted = yield* makeServiceProcess("processor", {
            ...common,
            DATABASE_URL: uninterruptedDb.url,
            DEXMON_PROCESSOR_GROUP: "processor-uninterrupted"
          })
          const interrupted = yield* makeServiceProcess("processor", {
            ...common,
            DATABASE_URL: interruptedDb.url,
            DEXMON_PROCESSOR_GROUP: "processor-interrupted",
            // Small batches, so the kill lands between commits.
            DEXMON_PROCESSOR_BATCH_SIZE: "50"
          })
          yield* Effect.all([receiver.start, uninterrupted.start, interrupted.start], { concurrency: "unbounded" })

          // Each sensor posts MANUAL then SENSOR for each of its 50 instants, one post at a time, in order;
          // the 100 sensors post concurrently: 10,000 posts. In-order processing gives SENSOR at version 2
          // everywhere; a MANUAL applied after its SENSOR would leave version 1.
          const now = yield* Clock.currentTimeMillis
          const t0 = now - 2 * 60 * MINUTE
          const posting = Effect.forEach(
            Array.from({ length: SENSORS }, (_, s) => `load-${s}`),
            (sensor) =>
              Effect.gen(function* () {
                const client = yield* DexMonClient
                for (const source of ["MANUAL", "SENSOR"] as const) {
                  for (let k = 0; k < KEYS_PER_SENSOR; k++) {
                    const payload = {
                      sensor_id: sensor as never,
                      timestamp: t0 + k * MINUTE,
                      glucose_value: source === "MANUAL" ? 100 + k : 150 + k
                    }
                    yield* source === "MANUAL"
                      ? client.ingestion.postManual({ payload })
                      : client.ingestion.postSensor({ payload })
                  }
                }
              }),
            { concurrency: SENSORS, discard: true }
          ).pipe(Effect.provide(DexMonClient.layer({ baseUrl: receiver.baseUrl, userId: "load-user" })))

          const expectedRows = SENSORS * KEYS_PER_SENSOR
          const postingFiber = yield* Effect.forkChild(posting)
          // Kill the second processor once it has written part of the data, then start it again.
          const atKill = yield* eventually(rowsOf(interruptedDb.sql), (rows) => rows.length >= expectedRows / 5, {
            what: `${expectedRows / 5} rows written by the processor to be killed`,
            every: "20 millis",
            times: 10_000
          })
          yield* interrupted.kill9
          assert.isBelow(atKill.length, expectedRows, "the kill must land before the processor has finished")
          yield* interrupted.start
          yield* Fiber.join(postingFiber)

          const done = (rows: ReadonlyArray<Row>) => rows.length === expectedRows && rows.every((r) => r.version === 2)
          const waitDone = (database: typeof uninterruptedDb) =>
            eventually(rowsOf(database.sql), done, {
              what: `${expectedRows} rows at version 2 in ${database.name}`,
              every: "100 millis",
              times: 1_200
            })
          const reference = yield* waitDone(uninterruptedDb)
          assert.strictEqual(reference.length, expectedRows)
          for (const row of reference) {
            assert.strictEqual(row.source, "SENSOR")
            assert.strictEqual(row.version, 2, `${row.sensor_id} at ${row.timestamp_ms}`)
            assert.strictEqual(row.glucose_value, 150 + (row.timestamp_ms - t0) / MINUTE)
          }
          const afterCrash = yield* waitDone(interruptedDb)
          assert.deepStrictEqual(afterCrash, reference)

          // An independent client sees keys equal to sensor_id and values in the documented schema.
          const tool = yield* kcatTool
          const kcat = spawnSync(
            tool.command,
            [
              "-b",
              brokers,
              "-C",
              "-t",
              `${common.DEXMON_TOPIC_PREFIX}glucose.events`,
              "-o",
              "beginning",
              "-e",
              "-c",
              "200",
              "-f",
              "%k\\t%s\\n"
            ],
            { encoding: "utf8", timeout: 60_000, env: { ...process.env, ...tool.env } }
          )
          assert.strictEqual(kcat.status, 0, kcat.stderr)
          const lines = kcat.stdout.trim().split("\n")
          assert.strictEqual(lines.length, 200)
          const decode = Schema.decodeUnknownSync(GlucoseEventJson)
          for (const line of lines) {
            const [key, value] = line.split("\t")
            const event = decode(value)
            assert.strictEqual(key, event.sensor_id)
            assert.strictEqual(event.user_id, "load-user")
            assert.match(event.sensor_id, /^load-\d+$/)
          }
        }),
      300_000
    )
  }
)
