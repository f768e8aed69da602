import { randomUUID } from "node:crypto"
import { DexMonClient } from "@dexmon/sdk"
import { eventually, makeServiceProcess, requiredServer, sqlClient, tempDir } from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect } from "effect"

const timescale = requiredServer("TIMESCALE_URL")
const brokers = requiredServer("KAFKA_BROKERS")
const MINUTE = 60_000
const HOUR = 60 * MINUTE

/**
 * What the TimescaleDB catalog says of `glucose_readings`, and which chunks hold `sensor`'s rows. On a pool
 * of one connection, closed before it returns: the server serves one session at a time.
 */
const catalogOf = (sensor: string) =>
  Effect.scoped(
    Effect.gen(function* () {
      const sql = yield* sqlClient(timescale, { maxConnections: 1 })
      const dimensions = yield* sql<{ column_name: string; time_interval: string }>`
        SELECT column_name, time_interval::text AS time_interval FROM timescaledb_information.dimensions
        WHERE hypertable_name = 'glucose_readings'`
      const compression = yield* sql<{ segmentby: string | null }>`
        SELECT segmentby FROM timescaledb_information.hypertable_compression_settings
        WHERE hypertable = 'glucose_readings'::regclass`
      const policies = yield* sql<{ compress_after: string }>`
        SELECT config->>'compress_after' AS compress_after FROM timescaledb_information.jobs
        WHERE proc_name = 'policy_compression' AND hypertable_name = 'glucose_readings'`
      // Each row's own table: a chunk of the hypertable, never the (empty) parent.
      const tables = yield* sql<{ schema: string; name: string; rows: number }>`
        SELECT n.nspname AS schema, c.relname AS name, count(*)::int AS rows
        FROM glucose_readings r JOIN pg_class c ON c.oid = r.tableoid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE r.sensor_id = ${sensor} GROUP BY 1, 2`
      const chunks = yield* sql<{ schema: string; name: string }>`
        SELECT chunk_schema AS schema, chunk_name AS name FROM timescaledb_information.chunks
        WHERE hypertable_name = 'glucose_readings'`
      return { dimensions, compression, policies, tables, chunks }
    })
  )

describe("pnpm start on TimescaleDB (PGlite with the extension: one session at a time, issue 17)", () => {
  it.live(
    "on a pool of one connection it ingests, raises exactly one LOW alert, serves the readings back, and keeps them in hypertable chunks",
    () =>
      Effect.gen(function* () {
        // The shared server keeps earlier runs' data: this run's ids, topics and groups are its own.
        const run = `ts-${randomUUID().slice(0, 8)}`
        const user = `${run}-user`
        const sensor = `${run}-cgm`
        const dexmon = yield* makeServiceProcess("standalone", {
          PATH: process.env.PATH,
          KAFKA_BROKERS: brokers,
          DATABASE_URL: timescale,
          DEXMON_PG_POOL_SIZE: "1",
          DEXMON_TOPIC_PREFIX: `${run}.`,
          DEXMON_PROCESSOR_GROUP: `${run}-processor`,
          DEXMON_NOTIFIER_GROUP: `${run}-notifier`,
          DEXMON_DELIVERER_GROUP: `${run}-deliverer`,
          // The archive folder; the archiver runs its first pass at start, on the same one connection.
          DEXMON_DATA_DIR: yield* tempDir("timescale"),
          SECURITY_DISABLED: "true"
        })
        // Ready means every SQL store answered its probe: nothing holds the one connection for good. A holder
        // would keep /readyz at 503 with each SQL probe out of time: the test says so rather than waiting on.
        yield* dexmon.start.pipe(
          Effect.timeoutOrElse({
            duration: "90 seconds",
            orElse: () =>
              Effect.flatMap(
                Effect.promise(() =>
                  fetch(`${dexmon.baseUrl}/readyz`, { signal: AbortSignal.timeout(10_000) }).then(
                    (response) => response.text(),
                    (error: unknown) => String(error)
                  )
                ),
                (readiness) => Effect.die(new Error(`not ready within 90 s; /readyz: ${readiness}`))
              )
          })
        )

        const now = yield* Clock.currentTimeMillis
        // Three flat lows five minutes apart: LOW (< 70), and no trend alert (a flat line projects no fall).
        const timestamps = [now - 10 * MINUTE, now - 5 * MINUTE, now - MINUTE]
        const values = [66, 64, 65]
        yield* Effect.gen(function* () {
          const client = yield* DexMonClient
          const accepted = yield* client.ingestion.postSensor({
            payload: {
              readings: timestamps.map((timestamp, i) => ({
                sensor_id: sensor as never,
                timestamp,
                glucose_value: values[i]!
              }))
            }
          })
          assert.strictEqual(accepted.accepted, 3)

          const range = { from: now - 24 * HOUR, to: now + HOUR }
          const page = yield* eventually(
            client.readings.list({ query: { ...range, sensor_id: sensor as never } }),
            (p) => p.items.length === 3,
            { what: "the three readings served back", every: "100 millis", times: 600 }
          )
          assert.deepStrictEqual(
            page.items.map((r) => [r.timestamp, r.glucose_value, r.source, r.version, r.user_id]),
            timestamps.map((timestamp, i) => [timestamp, values[i], "SENSOR", 1, user])
          )
          // Once the episode has seen the last reading, the notifier has decided all three.
          const alerts = yield* eventually(
            client.alerts.list({ query: range }),
            (p) => p.items.some((a) => a.last_reading_at === timestamps[2]),
            { what: "the LOW episode up to the last reading", every: "100 millis", times: 600 }
          )
          assert.deepStrictEqual(
            alerts.items.map((a) => [a.sensor_id, a.alert_type, a.status, a.started_at, a.glucose_value, a.ended_at]),
            [[sensor, "LOW", "ACTIVE", timestamps[0], 66, null]]
          )
        }).pipe(Effect.provide(DexMonClient.layer({ baseUrl: dexmon.baseUrl, userId: user })))

        const stopped = yield* dexmon.terminate
        assert.strictEqual(stopped.code, 0, dexmon.output().slice(-4000))

        // With the service gone, the catalog is read on the one session it held.
        const catalog = yield* catalogOf(sensor)
        assert.deepStrictEqual(catalog.dimensions, [{ column_name: "timestamp", time_interval: "7 days" }])
        assert.deepStrictEqual(catalog.compression, [{ segmentby: "sensor_id" }])
        assert.deepStrictEqual(catalog.policies, [{ compress_after: "30 days" }])
        assert.isNotEmpty(catalog.tables)
        assert.strictEqual(
          catalog.tables.reduce((sum, t) => sum + t.rows, 0),
          3
        )
        for (const table of catalog.tables) {
          assert.deepInclude(catalog.chunks, { schema: table.schema, name: table.name }, "a chunk of glucose_readings")
        }
      }).pipe(Effect.scoped),
    180_000
  )
})
