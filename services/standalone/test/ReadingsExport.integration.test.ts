import { DexMonClient } from "@dexmon/sdk"
import { eventually, makeDexMonProcess } from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Stream } from "effect"

const MINUTE = 60_000
const MMOL = 18.01559
const decoder = new TextDecoder()

describe("exporting readings", () => {
  it.live(
    "CSV with a header and NDJSON, over several pages in timestamp order, with the trends the readings endpoint shows",
    () =>
      Effect.gen(function* () {
        const dexmon = yield* makeDexMonProcess
        yield* dexmon.start
        const now = yield* Clock.currentTimeMillis
        const to = Math.floor(now / (5 * MINUTE)) * 5 * MINUTE - 10 * MINUTE
        const from = to - 8 * 24 * 60 * MINUTE
        // Sensor a every 5 minutes for 7 days (2,016 readings: three export pages with b's), b for 500 readings
        // two minutes after a's, and three manual readings.
        const readings = [
          ...Array.from({ length: 2016 }, (_, i) => ({
            sensor_id: "ex-a",
            timestamp: from + i * 5 * MINUTE,
            glucose_value: Math.round(140 + 60 * Math.sin(i / 9))
          })),
          ...Array.from({ length: 500 }, (_, i) => ({
            sensor_id: "ex-b",
            timestamp: from + 2 * MINUTE + i * 5 * MINUTE,
            glucose_value: 100 + (i % 7) * 3
          }))
        ]
        const manual = [1, 2, 3].map((i) => ({
          sensor_id: "ex-a",
          timestamp: from + i * 60 * MINUTE + MINUTE,
          glucose_value: 95
        }))
        const url = (query: string) => `${dexmon.baseUrl}/api/v1/readings/export?${query}`
        const range = `from=${new Date(from).toISOString()}&to=${new Date(to).toISOString()}`
        const fetchText = (query: string) =>
          Effect.promise(async () => {
            const response = await fetch(url(query), { headers: { "x-user-id": "export-user" } })
            return { status: response.status, type: response.headers.get("content-type"), text: await response.text() }
          })

        const listed = yield* Effect.gen(function* () {
          const client = yield* DexMonClient
          for (let i = 0; i < readings.length; i += 1000) {
            yield* client.ingestion.postSensor({
              payload: { readings: readings.slice(i, i + 1000).map((r) => ({ ...r, sensor_id: r.sensor_id as never })) }
            })
          }
          for (const reading of manual) {
            yield* client.ingestion.postManual({ payload: { ...reading, sensor_id: reading.sensor_id as never } })
          }
          const total = readings.length + manual.length
          yield* eventually(
            client.statistics.get({ query: { from, to } }),
            (statistics) => statistics.readings === readings.length,
            { what: "the readings stored", every: "100 millis", times: 600 }
          )
          // The manual readings, posted last, are not counted by the statistics: wait for them as well.
          yield* eventually(
            client.readings.list({ query: { from: from + 60 * MINUTE, to: from + 4 * 60 * MINUTE } }),
            (page) => page.items.filter((item) => item.source === "MANUAL").length === manual.length,
            { what: "the manual readings stored", every: "100 millis", times: 600 }
          )
          // What the readings endpoint shows, page by page (each page's first readings look their trend up).
          const items: Array<{
            sensor_id: string
            timestamp: number
            glucose_value: number
            source: string
            trend: string
            rate: number | null
          }> = []
          let cursor: string | undefined
          do {
            const page = yield* client.readings.list({ query: { from, to, limit: 700, cursor } })
            items.push(...page.items)
            cursor = page.next_cursor ?? undefined
          } while (cursor !== undefined)
          assert.strictEqual(items.length, total)

          // NDJSON through the SDK, as a stream of bytes.
          const bytes = yield* client.readings
            .export({ query: { from, to, format: "ndjson" } })
            .pipe(Effect.flatMap(Stream.runCollect))
          const lines = decoder
            .decode(Buffer.concat([...bytes].map((chunk) => Buffer.from(chunk))))
            .split("\n")
            .filter((line) => line !== "")
            .map(
              (line) => JSON.parse(line) as { sensor_id: string; timestamp: string; trend: string; rate: number | null }
            )
          assert.deepStrictEqual(
            lines.map((line) => [line.sensor_id, Date.parse(line.timestamp), line.trend, line.rate]),
            items.map((item) => [item.sensor_id, item.timestamp, item.trend, item.rate])
          )
          return items
        }).pipe(Effect.provide(DexMonClient.layer({ baseUrl: dexmon.baseUrl, userId: "export-user" })))

        const csv = yield* fetchText(`${range}&format=csv`)
        assert.strictEqual(csv.status, 200)
        assert.strictEqual(csv.type, "text/csv; charset=utf-8")
        const [header, ...rows] = csv.text.trimEnd().split("\n")
        assert.strictEqual(header, "sensor_id,timestamp,glucose_value,source,trend,rate")
        assert.deepStrictEqual(
          rows,
          listed.map(
            (r) =>
              `${r.sensor_id},${new Date(r.timestamp).toISOString()},${r.glucose_value},${r.source},${r.trend},${r.rate ?? ""}`
          )
        )
        // Oldest first, and a's trends from its own previous reading five minutes before, never b's.
        const times = rows.map((row) => Date.parse(row.split(",")[1]!))
        assert.isTrue(times.every((t, i) => i === 0 || t >= times[i - 1]!))
        const aRows = rows.map((row) => row.split(",")).filter((cells) => cells[0] === "ex-a" && cells[3] === "SENSOR")
        for (let i = 1; i < 50; i++) {
          const expected = (readings[i]!.glucose_value - readings[i - 1]!.glucose_value) / 5
          assert.strictEqual(Number(aRows[i]![5]), expected, `a's rate at ${i}`)
        }
        assert.strictEqual(aRows[0]![4], "NotComputable")
        assert.isTrue(rows.filter((row) => row.includes(",MANUAL,")).every((row) => row.endsWith(",NotComputable,")))

        const mmol = yield* fetchText(`${range}&format=csv&units=mmol/L`)
        const firstRow = mmol.text.split("\n")[1]!.split(",")
        assert.strictEqual(Number(firstRow[2]), readings[0]!.glucose_value / MMOL)

        const refused = yield* Effect.promise(async () => {
          const response = await fetch(url(`${range}&format=xml`), { headers: { "x-user-id": "export-user" } })
          return {
            status: response.status,
            body: (await response.json()) as { issues: ReadonlyArray<{ path: string }> }
          }
        })
        assert.strictEqual(refused.status, 400)
        assert.isTrue(refused.body.issues.some((issue) => issue.path === "format"))
      }),
    180_000
  )
})
