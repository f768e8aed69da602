import { Alert, deriveAlertId, SensorId, UserId } from "@dexmon/domain"
import { assert, layer } from "@effect/vitest"
import { Effect, type Layer } from "effect"
import { AlertStore } from "../../src/index.ts"

let runCounter = 0
const newRun = () => `a${Date.now().toString(36)}${runCounter++}`
const t0 = Date.parse("2026-11-20T00:00:00.000Z")
const alert = (user: string, sensor: string, timestamp: number, value: number) =>
  new Alert({
    alert_id: deriveAlertId(sensor, timestamp, value < 70 ? "LOW" : "HIGH"),
    user_id: UserId.make(user),
    sensor_id: SensorId.make(sensor),
    timestamp,
    glucose_value: value,
    alert_type: value < 70 ? "LOW" : "HIGH",
    status: "SENT"
  })

/** The behaviour every layer of the alert-store port must have. */
export const alertStoreContract = (name: string, storeLayer: Layer.Layer<AlertStore, unknown>) =>
  layer(storeLayer, { timeout: 120_000, excludeTestServices: true })(`AlertStore contract: ${name}`, (it) => {
    it.effect("saving the same alerts again keeps exactly one of each", () =>
      Effect.gen(function* () {
        const store = yield* AlertStore
        const user = newRun()
        const alerts = Array.from({ length: 10 }, (_, i) => alert(user, `${user}-s`, t0 + i * 300_000, 55))
        yield* store.save(alerts)
        yield* store.save(alerts)
        yield* store.save(alerts.slice(3))
        const page = yield* store.list({ user_id: UserId.make(user), from: t0, to: t0 + 86_400_000, limit: 100 })
        assert.deepStrictEqual(page.items.map((a) => a.alert_id).sort(), alerts.map((a) => a.alert_id).sort())
        assert.strictEqual(page.next_cursor, null)
      })
    )

    it.effect("pages a user's alerts newest first, none skipped or repeated, only that user's", () =>
      Effect.gen(function* () {
        const store = yield* AlertStore
        const user = newRun()
        // Two sensors at the same instants: ties on time are ordered by alert id.
        const alerts = Array.from({ length: 23 }, (_, i) =>
          alert(user, `${user}-s${i % 2}`, t0 + Math.floor(i / 2) * 300_000, i % 3 === 0 ? 300 : 60)
        )
        yield* store.save(alerts)
        yield* store.save([alert(`${user}-other`, `${user}-x`, t0, 50)])
        const seen: Array<Alert> = []
        let cursor: string | undefined
        do {
          const page = yield* store.list({
            user_id: UserId.make(user),
            from: t0,
            to: t0 + 86_400_000,
            limit: 5,
            cursor
          })
          seen.push(...page.items)
          cursor = page.next_cursor ?? undefined
        } while (cursor !== undefined)
        assert.strictEqual(seen.length, 23)
        assert.strictEqual(new Set(seen.map((a) => a.alert_id)).size, 23)
        for (let i = 1; i < seen.length; i++) assert.isTrue(seen[i - 1]!.timestamp >= seen[i]!.timestamp)
        assert.isTrue(seen.every((a) => a.user_id === user))
      })
    )

    it.effect("refuses a cursor it did not issue", () =>
      Effect.gen(function* () {
        const store = yield* AlertStore
        const error = yield* store
          .list({ user_id: UserId.make("u"), from: t0, to: t0 + 1, limit: 5, cursor: "bm9wZQ" })
          .pipe(Effect.flip)
        assert.strictEqual(error._tag, "InvalidCursor")
      })
    )
  })
