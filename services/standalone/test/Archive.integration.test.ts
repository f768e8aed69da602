import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { decodeReadings } from "@dexmon/archive"
import type { Reading } from "@dexmon/domain"
import { DexMonClient } from "@dexmon/sdk"
import { eventually, makeDexMonProcessWith, parseExposition, valueOf } from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect } from "effect"

const SENSOR = "cgm-archive-1"

/** Every page of the sensor's readings over a range, `limit` at a time. */
const allPages = (from: number, to: number, limit: number) =>
  Effect.gen(function* () {
    const client = yield* DexMonClient
    const items: Array<Reading> = []
    let cursor: string | undefined
    do {
      const page = yield* client.readings.list({ query: { from, to, sensor_id: SENSOR as never, limit, cursor } })
      items.push(...page.items)
      cursor = page.next_cursor ?? undefined
    } while (cursor !== undefined)
    return items
  })

/** The readings in the archive folder's Parquet objects, read with the archive's own decoder. */
const archivedTimestamps = (folder: string) =>
  Effect.gen(function* () {
    const files = (() => {
      try {
        return readdirSync(folder, { recursive: true, encoding: "utf8" }).filter((file) => file.endsWith(".parquet"))
      } catch {
        return []
      }
    })()
    const timestamps: Array<number> = []
    for (const file of files) {
      for (const row of yield* decodeReadings(readFileSync(join(folder, file)))) timestamps.push(row.timestamp)
    }
    return timestamps.sort((a, b) => a - b)
  })

describe("archiving inside pnpm start", () => {
  it.live(
    "readings older than the hot retention move to the archive folder on schedule, and GET serves them throughout, none missing or repeated",
    () =>
      Effect.gen(function* () {
        const dexmon = yield* makeDexMonProcessWith({ DEXMON_HOT_RETENTION: "20s", DEXMON_ARCHIVE_EVERY: "2s" })
        yield* dexmon.start
        const now = yield* Clock.currentTimeMillis
        const timestamps = [15, 12, 9, 6, 3, 0].map((secondsAgo) => now - secondsAgo * 1000)
        const range = [now - 60_000, now + 60_000] as const
        yield* Effect.gen(function* () {
          const client = yield* DexMonClient
          for (const timestamp of timestamps) {
            yield* client.ingestion.postSensor({
              payload: { sensor_id: SENSOR as never, timestamp, glucose_value: 120 }
            })
          }
          const stored = yield* eventually(allPages(...range, 4), (items) => items.length === 6, {
            what: "the 6 readings stored",
            every: "50 millis",
            times: 400
          })
          assert.deepStrictEqual(
            stored.map((reading) => reading.timestamp),
            timestamps
          )
          // While readings move from the hot store to the archive, every read returns each of them exactly once.
          const folder = join(dexmon.dataDir, "archive")
          let reads = 0
          const readThenArchived = Effect.gen(function* () {
            assert.deepStrictEqual(yield* allPages(...range, 4), stored, `read ${reads} while archiving`)
            reads++
            return yield* archivedTimestamps(folder)
          })
          const archived = yield* eventually(readThenArchived, (found) => found.length >= timestamps.length, {
            what: "the 6 readings archived",
            every: "200 millis",
            times: 300
          })
          assert.deepStrictEqual(archived, timestamps)
          assert.deepStrictEqual(yield* allPages(...range, 4), stored, "all six served from the archive")
        }).pipe(Effect.provide(DexMonClient.layer({ baseUrl: dexmon.baseUrl, userId: "user-archive" })))

        // What SREs see: the archived rows on /metrics, and the run's log line (JSON) carrying its trace id.
        const metrics = parseExposition(
          yield* Effect.promise(() => fetch(`${dexmon.baseUrl}/metrics`).then((response) => response.text()))
        )
        assert.strictEqual(valueOf(metrics, "dexmon_archived_rows_total"), timestamps.length)
        assert.isAtLeast(valueOf(metrics, "dexmon_store_write_duration_seconds_count", { store: "archive" }), 1)
        const runLines = dexmon
          .output()
          .split("\n")
          .filter((line) => line.includes("archive run finished"))
          .map((line) => JSON.parse(line) as { trace_id?: string; span_id?: string })
        assert.isNotEmpty(runLines)
        assert.isTrue(
          runLines.every(
            (line) => /^[0-9a-f]{32}$/.test(line.trace_id ?? "") && /^[0-9a-f]{16}$/.test(line.span_id ?? "")
          )
        )
      }),
    120_000
  )
})
