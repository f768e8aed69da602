import { createHash } from "node:crypto"
import { decodeReadings } from "@dexmon/archive"
import type { Reading } from "@dexmon/domain"
import { ArchiveStore, S3ArchiveStore } from "@dexmon/ports"
import { DexMonClient } from "@dexmon/sdk"
import { ALL, eventually, makeServiceProcess, mint } from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { Clock, ConfigProvider, Effect, Layer } from "effect"
import { makeProductionEnvironment } from "./support/Topology.ts"

const HOUR = 3_600_000

describe("the production topology: every service its own process, on Kafka, PostgreSQL, Cassandra and S3", () => {
  it.live(
    "sensor and manual posts become readings and alerts, an archive run moves the old ones to S3, and they stay queryable",
    () =>
      Effect.gen(function* () {
        const run = `topo${Date.now().toString(36)}`
        const { env, key, database } = yield* makeProductionEnvironment(run)
        const receiver = yield* makeServiceProcess("receiver", env)
        const processor = yield* makeServiceProcess("processor", env)
        const notifier = yield* makeServiceProcess("notifier", env)
        const gateway = yield* makeServiceProcess("gateway", env)
        const nightscout = yield* makeServiceProcess("nightscout", env)
        yield* Effect.all([receiver.start, processor.start, notifier.start, gateway.start, nightscout.start], {
          concurrency: "unbounded"
        })
        const token = yield* mint(key, { sub: "topology-user", scope: ALL })
        const now = yield* Clock.currentTimeMillis
        const sensor = `${run}-cgm` as never
        const at = { threeHours: now - 3 * HOUR, twoHours: now - 2 * HOUR, ninetyMinutes: now - 1.5 * HOUR }
        const recent = now - 5 * 60_000
        const uploaded = now - 10 * 60_000

        yield* Effect.gen(function* () {
          const app = yield* DexMonClient
          const sensorPosts = yield* app.ingestion.postSensor({
            payload: {
              readings: [
                { sensor_id: sensor, timestamp: at.threeHours, glucose_value: 60 },
                { sensor_id: sensor, timestamp: at.twoHours, glucose_value: 120 },
                { sensor_id: sensor, timestamp: recent, glucose_value: 280 }
              ]
            }
          })
          assert.strictEqual(sensorPosts.accepted, 3)
          yield* app.ingestion.postManual({
            payload: { sensor_id: sensor, timestamp: at.ninetyMinutes, glucose_value: 100 }
          })
          // A finger-stick at the same instant as a sensor reading: the sensor value stands.
          yield* app.ingestion.postManual({ payload: { sensor_id: sensor, timestamp: recent, glucose_value: 150 } })
        }).pipe(Effect.provide(DexMonClient.layer({ baseUrl: receiver.baseUrl, token })))

        // A Nightscout uploader of the same user, with a secret made through the gateway, posts to the Nightscout API.
        const secret = yield* Effect.flatMap(DexMonClient, (app) =>
          app.nightscoutCredentials.create({ payload: { kind: "api_secret" } })
        ).pipe(Effect.provide(DexMonClient.layer({ baseUrl: gateway.baseUrl, token })))
        const nightscoutHeaders = { "api-secret": createHash("sha1").update(secret.api_secret!).digest("hex") }
        const uploadedStatus = yield* Effect.promise(() =>
          fetch(`${nightscout.baseUrl}/api/v1/entries`, {
            method: "POST",
            headers: { ...nightscoutHeaders, "content-type": "application/json" },
            body: JSON.stringify([{ type: "sgv", sgv: 101, date: uploaded, device: "xDrip-DexcomG6" }])
          }).then((response) => response.status)
        )
        assert.strictEqual(uploadedStatus, 200)

        const read = Effect.gen(function* () {
          const app = yield* DexMonClient
          const items: Array<Reading> = []
          let cursor: string | undefined
          do {
            const page = yield* app.readings.list({ query: { from: now - 4 * HOUR, to: now + HOUR, limit: 2, cursor } })
            items.push(...page.items)
            cursor = page.next_cursor ?? undefined
          } while (cursor !== undefined)
          return items
        }).pipe(Effect.provide(DexMonClient.layer({ baseUrl: gateway.baseUrl, token })))
        const alerts = Effect.gen(function* () {
          const app = yield* DexMonClient
          return (yield* app.alerts.list({ query: { from: now - 4 * HOUR, to: now + HOUR } })).items
        }).pipe(Effect.provide(DexMonClient.layer({ baseUrl: gateway.baseUrl, token })))

        // The manual post for `recent` may be processed after the sensor one: wait for every reading and both alerts.
        const stored = yield* eventually(read, (items) => items.length === 5)
        assert.deepStrictEqual(
          stored.map((reading) => [reading.timestamp, reading.source, reading.glucose_value]),
          [
            [at.threeHours, "SENSOR", 60],
            [at.twoHours, "SENSOR", 120],
            [at.ninetyMinutes, "MANUAL", 100],
            [uploaded, "SENSOR", 101],
            [recent, "SENSOR", 280]
          ]
        )
        // The 60 three hours ago was late when posted: a BACKFILLED LOW, ended by the hour of silence after it
        // (20 minutes after its start). The 280 five minutes ago is live: an ACTIVE HIGH. Finger-sticks raise nothing.
        const raised = yield* eventually(alerts, (items) => items.length === 2)
        assert.deepStrictEqual(
          raised
            .map((alert) => [alert.alert_type, alert.status, alert.started_at, alert.ended_at, alert.glucose_value])
            .sort(),
          [
            ["HIGH", "ACTIVE", recent, null, 280],
            ["LOW", "BACKFILLED", at.threeHours, at.threeHours + 20 * 60_000, 60]
          ]
        )

        // The archiver, as a CronJob would run it, with a retention of one hour: the three older readings move to S3.
        const archiver = yield* makeServiceProcess("archiver", { ...env, DEXMON_HOT_RETENTION: "1h" })
        const archiveRun = yield* archiver.runToExit({})
        assert.strictEqual(archiveRun.code, 0, archiveRun.output.slice(-3000))
        const summary = archiveRun.output
          .split("\n")
          .filter((line) => line.includes("archive run finished"))
          .map((line) => JSON.parse(line) as { message: Array<unknown> })[0]
        assert.isDefined(summary)
        assert.match(JSON.stringify(summary), /"rows":3/)

        const hot = yield* database.sql<{ count: number }>`SELECT count(*)::int AS count FROM glucose_readings`
        assert.strictEqual(hot[0]!.count, 2, "only the two recent readings stay hot")
        const store = yield* ArchiveStore.pipe(
          Effect.provide(S3ArchiveStore.layer.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv()))))
        )
        const objects = (yield* store.list(`topology/${run}/`)).filter((object) => object.key.endsWith(".parquet"))
        const archived: Array<number> = []
        for (const object of objects) {
          for (const row of yield* decodeReadings((yield* store.get(object.key))!)) archived.push(row.timestamp)
        }
        assert.deepStrictEqual(archived.sort(), [at.threeHours, at.twoHours, at.ninetyMinutes].sort())

        // Old readings are still served, unchanged, through the same gateway, and through the Nightscout API.
        assert.deepStrictEqual(yield* read, stored)
        const entries = yield* Effect.promise(() =>
          fetch(`${nightscout.baseUrl}/api/v1/entries.json?count=100&find[date][$gte]=${at.threeHours}`, {
            headers: nightscoutHeaders
          }).then((response) => response.json() as Promise<ReadonlyArray<{ sgv?: number; mbg?: number }>>)
        )
        assert.deepStrictEqual(
          entries.map((entry) => entry.sgv ?? entry.mbg),
          [280, 101, 100, 120, 60]
        )
      }),
    300_000
  )
})
