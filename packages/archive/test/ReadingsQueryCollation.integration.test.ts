import { HotRetention, SensorId, UserId } from "@dexmon/domain"
import { PostgresArchiveLedger, ReadingStore, type ReadingWrite, S3ArchiveStore, SqlReadingStore } from "@dexmon/ports"
import { layerServerPostgresTestWith, requiredServer } from "@dexmon/ports/testing"
import { assert, describe, it } from "@effect/vitest"
import { Clock, ConfigProvider, Effect, Layer } from "effect"
import { makeArchiver, ReadingsQuery } from "../src/index.ts"
import { eventId } from "./ArchiverSuite.ts"

// The archive merges its rows with the hot store's page in code-unit order of sensor ids (as the Parquet objects and
// the cursor have them). A PostgreSQL server whose default collation is a language's (en-US: "a" before "B", "-"
// and "_" nearly ignored) must page the hot rows in that same order, or a page boundary between two sensors at one
// instant skips or repeats readings.

requiredServer("DATABASE_URL")
requiredServer("S3_ENDPOINT")
const MINUTE = 60_000
const DAY = 24 * 60 * MINUTE

describe("readings over the hot/archive boundary on a database collating by en-US", () => {
  it.live(
    "pages every reading exactly once, sensors at one instant in code-unit order",
    () =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const run = `col${now.toString(36)}`
        const user = UserId.make(`${run}-u`)
        // Code-unit order: "B" < "B-1" < "a" < "a-1" < "a1" < "a_1" < "b"; en-US sorts them a, a_1, a-1, a1, B, b, B-1 or so.
        const sensors = ["a", "B", "b", "a-1", "a_1", "a1", "B-1"].map((id) => SensorId.make(`${id}`))
        const write = (sensorId: SensorId, timestamp: number): ReadingWrite => ({
          event_id: eventId(),
          sensor_id: sensorId,
          user_id: user,
          timestamp,
          glucose_value: 100,
          source: "SENSOR"
        })
        const archivedAt = Math.floor(now / DAY) * DAY - 20 * DAY
        const hotAt = Math.floor(now / MINUTE) * MINUTE - 60 * MINUTE
        const store = yield* ReadingStore
        yield* store.upsert([write(sensors[0]!, archivedAt)])
        const archived = yield* makeArchiver({
          prefix: `test-collation/${run}`,
          maxRowsPerObject: 500,
          concurrency: 1,
          groupObjects: 1
        }).pipe(Effect.flatMap((archiver) => archiver.runOnce))
        assert.strictEqual(archived.rows, 1, "the old reading is archived")
        yield* store.upsert(sensors.map((sensorId) => write(sensorId, hotAt)))

        const query = yield* ReadingsQuery
        for (const limit of [1, 2, 3]) {
          const seen: Array<string> = []
          let cursor: string | undefined
          for (let pages = 0; pages < 20; pages++) {
            const page = yield* query.list({ user_id: user, from: archivedAt, to: now, limit, cursor })
            seen.push(...page.items.map((item) => `${item.timestamp === hotAt ? "hot" : "archived"}:${item.sensor_id}`))
            if (page.next_cursor === null) break
            cursor = page.next_cursor
          }
          const hotInCodeUnitOrder = [...sensors].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).map((id) => `hot:${id}`)
          assert.deepStrictEqual(seen, [`archived:${sensors[0]}`, ...hotInCodeUnitOrder], `pages of ${limit}`)
        }
      }).pipe(
        Effect.provide(
          ReadingsQuery.layer.pipe(
            Layer.provideMerge(
              Layer.mergeAll(
                PostgresArchiveLedger.layer.pipe(Layer.provideMerge(SqlReadingStore.layer)),
                S3ArchiveStore.layer.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv()))),
                Layer.succeed(HotRetention, HotRetention.of({ millis: 10 * DAY }))
              ).pipe(Layer.provideMerge(Layer.fresh(layerServerPostgresTestWith({ icuLocale: "en-US" }))))
            ),
            Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({})))
          )
        )
      ),
    120_000
  )
})
