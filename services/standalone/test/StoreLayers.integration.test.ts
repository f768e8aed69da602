import { EventId, SensorId, UserId } from "@dexmon/domain"
import { EmbeddedReadingsLayer, ReadingStoreLive, TimescaleLayer } from "@dexmon/platform"
import { type ArchiveLedger, ReadingStore } from "@dexmon/ports"
import { freshDatabase, sqlClient } from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Layer } from "effect"
import * as Harness from "../../../infra/Harness.ts"

/** Builds `layer` with `env` as its whole configuration, writes one reading through it, and releases it. */
const writeOneThrough = (
  layer: Layer.Layer<ReadingStore | ArchiveLedger, unknown> | Layer.Layer<ReadingStore, unknown>,
  env: Record<string, string>
) =>
  Effect.scoped(
    Effect.gen(function* () {
      const context = yield* Layer.build(
        layer.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env }))))
      )
      const store = Context.get(context, ReadingStore)
      return yield* store.upsert([
        {
          event_id: EventId.make("01900000-0000-7000-8000-000000000001"),
          sensor_id: SensorId.make("layers-s1"),
          user_id: UserId.make("layers-u1"),
          timestamp: Date.parse("2026-11-30T12:00:00.000Z"),
          glucose_value: 120,
          source: "SENSOR"
        }
      ])
    })
  )

/** What `glucose_readings` is in the database at `url`: a hypertable, partitioned, or neither. */
const layoutAt = (url: string) =>
  Effect.scoped(
    Effect.gen(function* () {
      const sql = yield* sqlClient(url, { maxConnections: 1 })
      const [row] = yield* sql<{ partitioned: boolean; extension: boolean }>`
        SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'glucose_readings'::regclass) AS partitioned,
          EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') AS extension`
      const hypertable =
        row!.extension &&
        (yield* sql`SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = 'glucose_readings'`)
          .length === 1
      return hypertable ? "hypertable" : row!.partitioned ? "partitioned" : "neither"
    })
  )

describe("the composition root's readings layers, by the brief's names (issue 17)", () => {
  it.live(
    "TimescaleLayer keeps readings in a hypertable on TimescaleDB, and refuses a PostgreSQL without the extension",
    () =>
      Effect.gen(function* () {
        const timescale = yield* Effect.acquireRelease(
          Effect.promise(() => Harness.privateTimescale()),
          (server) => Effect.promise(() => server.stop())
        )
        const written = yield* writeOneThrough(TimescaleLayer, {
          DATABASE_URL: timescale.url,
          DEXMON_PG_POOL_SIZE: "1"
        })
        assert.strictEqual(written.inserted, 1)
        assert.strictEqual(yield* layoutAt(timescale.url), "hypertable")

        const plain = yield* freshDatabase()
        const refused = yield* writeOneThrough(TimescaleLayer, { DATABASE_URL: plain.url }).pipe(Effect.flip)
        assert.match(String((refused as { message?: unknown }).message), /no timescaledb extension/)
        assert.strictEqual(yield* layoutAt(plain.url).pipe(Effect.orElseSucceed(() => "no table")), "no table")
      }).pipe(Effect.scoped),
    120_000
  )

  it.live(
    "EmbeddedReadingsLayer partitions by month; ReadingStoreLive detects: a hypertable on TimescaleDB, partitions on PostgreSQL 15",
    () =>
      Effect.gen(function* () {
        const partitionedDb = yield* freshDatabase()
        yield* writeOneThrough(EmbeddedReadingsLayer, { DATABASE_URL: partitionedDb.url })
        assert.strictEqual(yield* layoutAt(partitionedDb.url), "partitioned")

        const detectedDb = yield* freshDatabase()
        yield* writeOneThrough(ReadingStoreLive, { DATABASE_URL: detectedDb.url })
        assert.strictEqual(yield* layoutAt(detectedDb.url), "partitioned")

        const timescale = yield* Effect.acquireRelease(
          Effect.promise(() => Harness.privateTimescale()),
          (server) => Effect.promise(() => server.stop())
        )
        yield* writeOneThrough(ReadingStoreLive, { DATABASE_URL: timescale.url, DEXMON_PG_POOL_SIZE: "1" })
        assert.strictEqual(yield* layoutAt(timescale.url), "hypertable")
      }).pipe(Effect.scoped),
    120_000
  )
})
