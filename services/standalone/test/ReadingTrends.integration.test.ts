import { DexMonClient } from "@dexmon/sdk"
import { eventually, makeDexMonProcess } from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect } from "effect"

const MINUTE = 60_000
const MMOL = 18.01559

describe("readings with their units, rate and trend", () => {
  it.live(
    "each reading's trend from the previous SENSOR reading within 15 minutes, across pages; mmol/L; the ETag follows units and a late neighbour",
    () =>
      Effect.gen(function* () {
        const dexmon = yield* makeDexMonProcess
        yield* dexmon.start
        const now = yield* Clock.currentTimeMillis
        const t0 = Math.floor(now / (5 * MINUTE)) * 5 * MINUTE - 3 * 60 * MINUTE
        yield* Effect.gen(function* () {
          const client = yield* DexMonClient
          const sensor = (sensor_id: string, minute: number, glucose_value: number) => ({
            sensor_id: sensor_id as never,
            timestamp: t0 + minute * MINUTE,
            glucose_value
          })
          yield* client.ingestion.postSensor({
            payload: {
              readings: [
                sensor("tr-a", 0, 100),
                sensor("tr-a", 5, 115), // +15 in 5 min: +3/min
                sensor("tr-b", 6, 200), // another sensor between: never a's previous
                sensor("tr-a", 10, 110), // -5 in 5 min: -1/min
                sensor("tr-a", 15, 104), // -6 in 5 min: -1.2/min
                sensor("tr-a", 35, 104), // 20 minutes after the last: not computable
                sensor("tr-a", 40, 94) // -2/min
              ]
            }
          })
          yield* client.ingestion.postManual({ payload: sensor("tr-a", 12, 90) })
          const window = { from: t0, to: t0 + 60 * MINUTE }
          const all = yield* eventually(client.readings.list({ query: window }), (page) => page.items.length === 8, {
            what: "the eight readings stored",
            every: "50 millis",
            times: 400
          })
          const seen = (items: typeof all.items) =>
            items.map((r) => [r.sensor_id, (r.timestamp - t0) / MINUTE, r.source, r.rate, r.trend])
          const expected = [
            ["tr-a", 0, "SENSOR", null, "NotComputable"],
            ["tr-a", 5, "SENSOR", 3, "DoubleUp"],
            ["tr-b", 6, "SENSOR", null, "NotComputable"],
            ["tr-a", 10, "SENSOR", -1, "FortyFiveDown"],
            ["tr-a", 12, "MANUAL", null, "NotComputable"],
            ["tr-a", 15, "SENSOR", -1.2, "FortyFiveDown"],
            ["tr-a", 35, "SENSOR", null, "NotComputable"],
            ["tr-a", 40, "SENSOR", -2, "SingleDown"]
          ]
          assert.deepStrictEqual(seen(all.items), expected)
          assert.isTrue(all.items.every((r) => r.units === "mg/dL"))

          // Pages of two: each page's first reading looks its previous one up, so the trends are the same.
          const paged: Array<(typeof all.items)[number]> = []
          let cursor: string | undefined
          do {
            const page = yield* client.readings.list({ query: { ...window, limit: 2, cursor } })
            paged.push(...page.items)
            cursor = page.next_cursor ?? undefined
          } while (cursor !== undefined)
          assert.deepStrictEqual(seen(paged), expected)

          // One sensor's readings only: b's reading is not in the page, nor anyone's previous.
          const onlyA = yield* client.readings.list({ query: { ...window, sensor_id: "tr-a" as never, limit: 3 } })
          assert.deepStrictEqual(seen(onlyA.items), expected.filter((row) => row[0] === "tr-a").slice(0, 3))

          // mmol/L: the value and the rate in mmol/L, unrounded; the trend is the same.
          const mmol = yield* client.readings.list({ query: { ...window, units: "mmol/L" } })
          assert.deepStrictEqual(
            mmol.items.map((r) => [r.units, r.glucose_value, r.rate, r.trend]),
            all.items.map((r) => ["mmol/L", r.glucose_value / MMOL, r.rate === null ? null : r.rate / MMOL, r.trend])
          )

          // The ETag of one reading: another in other units, and another once a neighbour arrives before it.
          const url = (minute: number, units = "") =>
            `${dexmon.baseUrl}/api/v1/readings/tr-a/${new Date(t0 + minute * MINUTE).toISOString()}${units}`
          const get = (target: string, etag?: string) =>
            Effect.promise(() =>
              fetch(target, {
                headers: { "x-user-id": "trend-user", ...(etag === undefined ? {} : { "if-none-match": etag }) }
              })
            )
          const first = yield* get(url(35))
          const etag = first.headers.get("etag")!
          assert.strictEqual(((yield* Effect.promise(() => first.json())) as { trend: string }).trend, "NotComputable")
          assert.strictEqual((yield* get(url(35), etag)).status, 304)
          const inMmol = yield* get(url(35, "?units=mmol/L"))
          assert.notStrictEqual(inMmol.headers.get("etag"), etag, "other units, another representation")
          assert.strictEqual((yield* get(url(35, "?units=mmol/L"), etag)).status, 200)
          // A reading at minute 30 arrives late: minute 35 now has a previous one, 5 minutes before.
          yield* client.ingestion.postSensor({ payload: sensor("tr-a", 30, 114) })
          const after = yield* eventually(get(url(35), etag), (response) => response.status === 200, {
            what: "the late neighbour stored",
            every: "50 millis",
            times: 400
          })
          const body = (yield* Effect.promise(() => after.json())) as { trend: string; rate: number; etag: string }
          assert.deepStrictEqual([body.rate, body.trend], [-2, "SingleDown"])
          assert.strictEqual(after.headers.get("etag"), `"${body.etag}"`)
          assert.notStrictEqual(after.headers.get("etag"), etag)
          // Units the readings endpoints do not know are refused, naming the parameter.
          for (const target of [
            `${url(35)}?units=mmol`,
            `${dexmon.baseUrl}/api/v1/readings?from=${new Date(window.from).toISOString()}&to=${new Date(window.to).toISOString()}&units=mg`
          ]) {
            const refused = yield* get(target)
            const answer = (yield* Effect.promise(() => refused.json())) as { issues: ReadonlyArray<{ path: string }> }
            assert.strictEqual(refused.status, 400, target)
            assert.isTrue(
              answer.issues.some((issue) => issue.path === "units"),
              JSON.stringify(answer)
            )
          }

          // A sensor changing hands: the new owner's first reading has no previous one of theirs, and another
          // user's reading five minutes before must not show through its rate.
          yield* client.ingestion.postSensor({ payload: sensor("tr-shared", 50, 100) })
          yield* eventually(
            client.readings.list({ query: { ...window, sensor_id: "tr-shared" as never } }),
            (page) => page.items.length === 1,
            { what: "the first owner's reading stored", every: "50 millis", times: 400 }
          )
          yield* client.sensors.release({ params: { sensor_id: "tr-shared" as never } })
          const next = yield* DexMonClient.pipe(
            Effect.provide(DexMonClient.layer({ baseUrl: dexmon.baseUrl, userId: "trend-next-owner" }))
          )
          yield* next.ingestion.postSensor({ payload: sensor("tr-shared", 55, 130) })
          const theirs = yield* eventually(next.readings.list({ query: window }), (page) => page.items.length === 1, {
            what: "the next owner's reading stored",
            every: "50 millis",
            times: 400
          })
          assert.deepStrictEqual(seen(theirs.items), [["tr-shared", 55, "SENSOR", null, "NotComputable"]])
        }).pipe(Effect.provide(DexMonClient.layer({ baseUrl: dexmon.baseUrl, userId: "trend-user" })))
      }),
    120_000
  )
})
