import { DexMonClient } from "@dexmon/sdk"
import { eventually, makeDexMonProcess } from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect } from "effect"

const HOUR = 3_600_000
const iso = (millis: number) => new Date(millis).toISOString()

interface Case {
  readonly name: string
  readonly path: "/api/v1/glucose/sensor" | "/api/v1/glucose/manual"
  readonly body: (now: number) => string
  /** Every field the answer must name. */
  readonly fields: ReadonlyArray<string>
}

const reading = (now: number, overrides: Record<string, unknown> = {}) => ({
  sensor_id: "bad-input",
  timestamp: iso(now - 60_000),
  glucose_value: 100,
  ...overrides
})
const json = (value: unknown) => JSON.stringify(value)

const cases: ReadonlyArray<Case> = [
  {
    name: "glucose below 20",
    path: "/api/v1/glucose/sensor",
    body: (n) => json(reading(n, { glucose_value: 19 })),
    fields: ["glucose_value"]
  },
  {
    name: "glucose above 600",
    path: "/api/v1/glucose/sensor",
    body: (n) => json(reading(n, { glucose_value: 601 })),
    fields: ["glucose_value"]
  },
  {
    name: "glucose as a string",
    path: "/api/v1/glucose/manual",
    body: (n) => json(reading(n, { glucose_value: "65" })),
    fields: ["glucose_value"]
  },
  {
    name: "sensor id with a space",
    path: "/api/v1/glucose/sensor",
    body: (n) => json(reading(n, { sensor_id: "bad input" })),
    fields: ["sensor_id"]
  },
  {
    name: "sensor id of 65 characters",
    path: "/api/v1/glucose/sensor",
    body: (n) => json(reading(n, { sensor_id: "s".repeat(65) })),
    fields: ["sensor_id"]
  },
  {
    name: "empty sensor id",
    path: "/api/v1/glucose/manual",
    body: (n) => json(reading(n, { sensor_id: "" })),
    fields: ["sensor_id"]
  },
  {
    name: "timestamp without a zone",
    path: "/api/v1/glucose/sensor",
    body: (n) => json(reading(n, { timestamp: iso(n).slice(0, 19) })),
    fields: ["timestamp"]
  },
  {
    name: "timestamp in another zone",
    path: "/api/v1/glucose/sensor",
    body: (n) => json(reading(n, { timestamp: `${iso(n).slice(0, 19)}+02:00` })),
    fields: ["timestamp"]
  },
  {
    name: "timestamp as a number",
    path: "/api/v1/glucose/manual",
    body: (n) => json(reading(n, { timestamp: n })),
    fields: ["timestamp"]
  },
  {
    name: "timestamp 6 minutes in the future",
    path: "/api/v1/glucose/sensor",
    body: (n) => json(reading(n, { timestamp: iso(n + 6 * 60_000) })),
    fields: ["timestamp"]
  },
  {
    name: "timestamp older than 90 days",
    path: "/api/v1/glucose/manual",
    body: (n) => json(reading(n, { timestamp: iso(n - 91 * 24 * HOUR) })),
    fields: ["timestamp"]
  },
  {
    name: "a single reading without glucose_value (not the batch's `readings`)",
    path: "/api/v1/glucose/sensor",
    body: (n) => json({ sensor_id: "bad-input", timestamp: iso(n - 60_000) }),
    fields: ["glucose_value"]
  },
  {
    name: "missing fields",
    path: "/api/v1/glucose/manual",
    body: () => json({}),
    fields: ["sensor_id", "timestamp", "glucose_value"]
  },
  {
    name: "malformed JSON",
    path: "/api/v1/glucose/sensor",
    body: () => '{"sensor_id": "bad-input",',
    fields: ["payload"]
  },
  { name: "a JSON array", path: "/api/v1/glucose/sensor", body: () => "[1, 2]", fields: ["payload"] },
  {
    name: "a batch with one bad reading among good ones",
    path: "/api/v1/glucose/sensor",
    body: (n) =>
      json({ readings: [reading(n), reading(n, { timestamp: iso(n - 120_000), glucose_value: 700 }), reading(n)] }),
    fields: ["readings[1].glucose_value"]
  },
  {
    name: "a batch with a reading in the future",
    path: "/api/v1/glucose/sensor",
    body: (n) => json({ readings: [reading(n), reading(n, { timestamp: iso(n + HOUR) })] }),
    fields: ["readings[1].timestamp"]
  },
  { name: "an empty batch", path: "/api/v1/glucose/sensor", body: () => json({ readings: [] }), fields: ["readings"] },
  {
    name: "a batch of 1,001 readings",
    path: "/api/v1/glucose/sensor",
    body: (n) =>
      json({ readings: Array.from({ length: 1001 }, (_, i) => reading(n, { timestamp: iso(n - i * 1000) })) }),
    fields: ["readings"]
  },
  {
    name: "a batch on the manual endpoint",
    path: "/api/v1/glucose/manual",
    body: (n) => json({ readings: [reading(n)] }),
    fields: ["sensor_id"]
  }
]

describe("invalid requests", () => {
  it.live(
    "each gets 400 naming the field, and nothing is stored",
    () =>
      Effect.gen(function* () {
        const dexmon = yield* makeDexMonProcess
        yield* dexmon.start
        const now = yield* Clock.currentTimeMillis
        for (const testCase of cases) {
          const response = yield* Effect.promise(() =>
            fetch(`${dexmon.baseUrl}${testCase.path}`, {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: testCase.body(now)
            })
          )
          const answer = (yield* Effect.promise(() => response.json())) as {
            readonly _tag: string
            readonly issues: ReadonlyArray<{ readonly path: string; readonly message: string }>
          }
          assert.strictEqual(response.status, 400, `${testCase.name}: ${JSON.stringify(answer)}`)
          assert.strictEqual(answer._tag, "ValidationError", testCase.name)
          for (const field of testCase.fields) {
            assert.isTrue(
              answer.issues.some((issue) => issue.path === field),
              `${testCase.name}: expected an issue at ${field}, got ${JSON.stringify(answer.issues)}`
            )
          }
        }

        const tooLarge = yield* Effect.promise(() =>
          fetch(`${dexmon.baseUrl}/api/v1/glucose/sensor`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: `{"readings": [${"1,".repeat(600_000)}1]}`
          })
        )
        assert.strictEqual(tooLarge.status, 413)
        assert.strictEqual(((yield* Effect.promise(() => tooLarge.json())) as { _tag: string })._tag, "PayloadTooLarge")

        // One valid low reading for the same sensor, processed after everything above (same partition, in order):
        // once it is stored, it must be the only reading. Once the notifier has decided it, its own LOW episode
        // (late, three hours old: BACKFILLED) must be the only alert; had a refused reading (a minute old, newer
        // than the marker) got through, the marker would be an older reading, which opens nothing, and a 19 or
        // a 601 would have opened an episode of its own.
        yield* Effect.gen(function* () {
          const client = yield* DexMonClient
          const marker = now - 3 * HOUR
          yield* client.ingestion.postSensor({
            payload: { sensor_id: "bad-input" as never, timestamp: marker, glucose_value: 65 }
          })
          const query = { query: { from: now - 100 * 24 * HOUR, to: now + 2 * HOUR } }
          const page = yield* eventually(client.readings.list(query), (p) => p.items.length > 0, {
            what: "the marker reading stored",
            every: "50 millis",
            times: 400
          })
          assert.deepStrictEqual(
            page.items.map((r) => r.timestamp),
            [marker]
          )
          const alerts = yield* eventually(client.alerts.list(query), (p) => p.items.length > 0, {
            what: "the marker's alert decided",
            every: "50 millis",
            times: 400
          })
          assert.deepStrictEqual(
            alerts.items.map((alert) => [alert.alert_type, alert.status, alert.started_at, alert.glucose_value]),
            [["LOW", "BACKFILLED", marker, 65]]
          )
        }).pipe(Effect.provide(DexMonClient.layer({ baseUrl: dexmon.baseUrl })))
      }),
    120_000
  )
})
