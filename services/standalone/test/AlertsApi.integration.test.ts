import {
  Alert,
  type AlertId,
  type AlertStatus,
  type AlertType,
  deriveAlertId,
  SensorId,
  UserId,
  unnotifiedAlertFields
} from "@dexmon/domain"
import { AlertStore, EventLog, Topics } from "@dexmon/ports"
import { DexMonClient } from "@dexmon/sdk"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import {
  asUser,
  layerGatewayOnEmbeddedPostgres,
  type RawResponse,
  rawRequest
} from "./support/GatewayOnEmbeddedPostgres.ts"

const MINUTE = 60_000
const t0 = Date.parse("2026-11-24T08:00:00.000Z")
const range = { from: t0 - 60 * MINUTE, to: t0 + 24 * 60 * MINUTE }
const USER = "alerts-api-user"
const OTHER = "alerts-api-other"

const episode = (fields: {
  readonly user: string
  readonly sensor: string
  readonly type: AlertType
  readonly status: AlertStatus
  readonly startMinute: number
  readonly endMinute: number | null
  readonly value: number
}) => {
  const started = t0 + fields.startMinute * MINUTE
  const ended = fields.endMinute === null ? null : t0 + fields.endMinute * MINUTE
  return new Alert({
    alert_id: deriveAlertId(fields.sensor, started, fields.type),
    user_id: UserId.make(fields.user),
    sensor_id: SensorId.make(fields.sensor),
    alert_type: fields.type,
    status: fields.status,
    timestamp: started,
    started_at: started,
    ended_at: ended,
    glucose_value: fields.value,
    extreme_value: fields.value,
    last_value: fields.value,
    last_reading_at: ended ?? started + 5 * MINUTE,
    ...unnotifiedAlertFields
  })
}

// The caller's episodes, by start: resolved (0), backfilled and still open (10), backfilled and over (20),
// open (60, 90); and another user's open episode, started after all of them.
const resolvedLow = episode({
  user: USER,
  sensor: "api-cgm-a",
  type: "LOW",
  status: "RESOLVED",
  startMinute: 0,
  endMinute: 30,
  value: 65
})
const openBackfilled = episode({
  user: USER,
  sensor: "api-cgm-c",
  type: "FALLING_FAST",
  status: "BACKFILLED",
  startMinute: 10,
  endMinute: null,
  value: 120
})
const endedBackfilled = episode({
  user: USER,
  sensor: "api-cgm-b",
  type: "LOW",
  status: "BACKFILLED",
  startMinute: 20,
  endMinute: 40,
  value: 68
})
const openHigh = episode({
  user: USER,
  sensor: "api-cgm-a",
  type: "HIGH",
  status: "ACTIVE",
  startMinute: 60,
  endMinute: null,
  value: 260
})
const openUrgentLow = episode({
  user: USER,
  sensor: "api-cgm-b",
  type: "URGENT_LOW",
  status: "ACTIVE",
  startMinute: 90,
  endMinute: null,
  value: 52
})
const othersLow = episode({
  user: OTHER,
  sensor: "api-cgm-x",
  type: "LOW",
  status: "ACTIVE",
  startMinute: 100,
  endMinute: null,
  value: 60
})

/** The episodes above, saved directly through the store once it is up, before any test runs. */
const Seeded = Layer.effectDiscard(
  Effect.gen(function* () {
    const store = yield* AlertStore
    yield* store.save([resolvedLow, openBackfilled, endedBackfilled, openHigh, openUrgentLow, othersLow])
  })
)

const ids = (alerts: ReadonlyArray<Alert>) => alerts.map((alert) => alert.alert_id)

/** A GET outside the SDK, as the caller, for requests the typed client would refuse to encode. */
const rawGet = (path: string) =>
  rawRequest(USER, "GET", path).pipe(
    Effect.map((answer) => ({
      status: answer.status,
      body: answer.body as RawResponse["body"] & { readonly items?: ReadonlyArray<{ readonly alert_id: string }> }
    }))
  )

layer(Seeded.pipe(Layer.provideMerge(layerGatewayOnEmbeddedPostgres("alerts-api"))), {
  timeout: 180_000,
  excludeTestServices: true
})("the gateway's alert endpoints, through the SDK, on the PostgreSQL alert store", (it) => {
  it.effect("GET /alerts lists the caller's episodes newest first, filtered by status, kind or both", () =>
    asUser(USER)(
      Effect.gen(function* () {
        const client = yield* DexMonClient
        const list = (filters: { readonly status?: AlertStatus; readonly alert_type?: AlertType }) =>
          client.alerts.list({ query: { ...range, ...filters } }).pipe(Effect.map((page) => ids(page.items)))

        const all = yield* client.alerts.list({ query: range })
        assert.deepStrictEqual(
          ids(all.items),
          ids([openUrgentLow, openHigh, endedBackfilled, openBackfilled, resolvedLow])
        )
        assert.isNull(all.next_cursor)
        // Every field of the episode survives the store and the wire.
        assert.deepStrictEqual(all.items[0], { ...openUrgentLow, delivery_status: "NONE" })

        assert.deepStrictEqual(yield* list({ status: "ACTIVE" }), ids([openUrgentLow, openHigh]))
        assert.deepStrictEqual(yield* list({ status: "RESOLVED" }), ids([resolvedLow]))
        assert.deepStrictEqual(yield* list({ status: "BACKFILLED" }), ids([endedBackfilled, openBackfilled]))
        assert.deepStrictEqual(yield* list({ alert_type: "LOW" }), ids([endedBackfilled, resolvedLow]))
        assert.deepStrictEqual(yield* list({ alert_type: "LOW", status: "BACKFILLED" }), ids([endedBackfilled]))
        assert.deepStrictEqual(yield* list({ alert_type: "RISING_FAST" }), [])
      })
    )
  )

  it.effect("GET /alerts pages a filtered listing with its cursor, none skipped or repeated", () =>
    asUser(USER)(
      Effect.gen(function* () {
        const client = yield* DexMonClient
        const seen: Array<string> = []
        let cursor: string | undefined
        let pages = 0
        do {
          const page = yield* client.alerts.list({ query: { ...range, status: "ACTIVE", limit: 1, cursor } })
          seen.push(...ids(page.items))
          cursor = page.next_cursor ?? undefined
          pages++
        } while (cursor !== undefined && pages < 10)
        assert.deepStrictEqual(seen, ids([openUrgentLow, openHigh]))
      })
    )
  )

  it.effect("GET /alerts answers a bad status or alert_type 400, naming each parameter", () =>
    Effect.gen(function* () {
      const from = new Date(range.from).toISOString()
      const to = new Date(range.to).toISOString()
      const bad = yield* rawGet(`/api/v1/alerts?from=${from}&to=${to}&status=SENT&alert_type=LOWISH`)
      assert.strictEqual(bad.status, 400, JSON.stringify(bad.body))
      assert.strictEqual(bad.body._tag, "ValidationError")
      assert.deepStrictEqual(bad.body.issues?.map((issue) => issue.path).sort(), ["alert_type", "status"])
    })
  )

  it.effect("GET /alerts/active answers the caller's open episodes only, newest first", () =>
    Effect.gen(function* () {
      const active = Effect.gen(function* () {
        const client = yield* DexMonClient
        return yield* client.alerts.active()
      })
      const mine = yield* asUser(USER)(active)
      assert.deepStrictEqual(ids(mine.items), ids([openUrgentLow, openHigh, openBackfilled]))
      assert.deepStrictEqual(mine.items[0], { ...openUrgentLow, delivery_status: "NONE" })
      const theirs = yield* asUser(OTHER)(active)
      assert.deepStrictEqual(ids(theirs.items), ids([othersLow]))
    })
  )

  it.effect("/alerts/active is its own route, not an alert id", () =>
    Effect.gen(function* () {
      const active = yield* rawGet("/api/v1/alerts/active")
      assert.strictEqual(active.status, 200, JSON.stringify(active.body))
      assert.deepStrictEqual(
        active.body.items?.map((alert) => alert.alert_id),
        ids([openUrgentLow, openHigh, openBackfilled])
      )
    })
  )

  it.effect("GET /alerts/:alert_id answers the caller's episode; another user's id or an unknown one is 404", () =>
    asUser(USER)(
      Effect.gen(function* () {
        const client = yield* DexMonClient
        const get = (alert_id: AlertId) => client.alerts.get({ params: { alert_id } })

        // Never told, with no endpoint: nothing to deliver.
        assert.deepStrictEqual(yield* get(resolvedLow.alert_id), { ...resolvedLow, delivery_status: "NONE" })
        assert.deepStrictEqual(yield* get(openBackfilled.alert_id), { ...openBackfilled, delivery_status: "NONE" })

        const others = yield* Effect.flip(get(othersLow.alert_id))
        assert.strictEqual(others._tag, "NotFound")
        const unknown = yield* Effect.flip(get(deriveAlertId("api-cgm-z", t0, "LOW")))
        assert.strictEqual(unknown._tag, "NotFound")
      })
    )
  )

  it.effect(
    "GET /alerts/:alert_id answers 404 on the wire for another user's id, and 400 naming alert_id for a malformed one",
    () =>
      Effect.gen(function* () {
        const others = yield* rawGet(`/api/v1/alerts/${othersLow.alert_id}`)
        assert.strictEqual(others.status, 404, JSON.stringify(others.body))
        assert.strictEqual(others.body._tag, "NotFound")

        const malformed = yield* rawGet("/api/v1/alerts/not-a-uuid")
        assert.strictEqual(malformed.status, 400, JSON.stringify(malformed.body))
        assert.strictEqual(malformed.body._tag, "ValidationError")
        assert.deepStrictEqual(
          malformed.body.issues?.map((issue) => issue.path),
          ["alert_id"]
        )
      })
  )
})

/** A request outside the SDK as the caller, for bodies the typed client would refuse to encode. */
const rawAs = (
  method: "PUT" | "POST",
  path: string,
  body: string | undefined,
  headers: Readonly<Record<string, string>> = {}
) => rawRequest(USER, method, path, body, headers)

/** The caller's settings as GET answers them: the ETag and the document. */
const currentSettings = asUser(USER)(
  Effect.gen(function* () {
    const client = yield* DexMonClient
    const { body, headers } = yield* client.alertSettings.get()
    return { etag: headers.etag, body }
  })
)

/** The records of the events topic: every accepted action is one. */
const eventsAppended = Effect.gen(function* () {
  const log = yield* EventLog
  const { names } = yield* Topics
  const ends = yield* log.endOffsets(names.events)
  return [...ends.values()].reduce((sum, end) => sum + end, 0)
})

layer(Seeded.pipe(Layer.provideMerge(layerGatewayOnEmbeddedPostgres("alerts-api"))), {
  timeout: 180_000,
  excludeTestServices: true
})("the owner's controls and alert settings, on the gateway: refused requests change nothing", (it) => {
  it.effect.each<{ readonly name: string; readonly body: string; readonly path: string }>([
    ...(
      [
        ["low below 60", { low: { threshold: 59 } }, "low.threshold"],
        ["low above 100", { low: { threshold: 101 } }, "low.threshold"],
        ["high below 120", { high: { threshold: 119 } }, "high.threshold"],
        ["high above 400", { high: { threshold: 401 } }, "high.threshold"],
        ["urgent low above 55", { urgent_low: { threshold: 56 } }, "urgent_low.threshold"],
        ["urgent low moved from the deployment's", { urgent_low: { threshold: 45 } }, "urgent_low.threshold"],
        ["urgent low turned off", { urgent_low: { enabled: false } }, "urgent_low.enabled"],
        ["horizon below 10", { urgent_low_soon: { horizon_minutes: 9 } }, "urgent_low_soon.horizon_minutes"],
        ["horizon above 30", { urgent_low_soon: { horizon_minutes: 31 } }, "urgent_low_soon.horizon_minutes"],
        ["fall rate below 2", { falling_fast: { rate: 1.5 } }, "falling_fast.rate"],
        ["rise rate above 5", { rising_fast: { rate: 6 } }, "rising_fast.rate"],
        ["no data below 10", { no_data: { minutes: 9 } }, "no_data.minutes"],
        ["no data above 120", { no_data: { minutes: 121 } }, "no_data.minutes"],
        ["repeat below 5", { low: { repeat_minutes: 4 } }, "low.repeat_minutes"],
        ["repeat above 240", { high: { repeat_minutes: 241 } }, "high.repeat_minutes"],
        ["low not below high", { low: { threshold: 100 }, high: { threshold: 100 } }, "high.threshold"],
        ["a threshold as text", { high: { threshold: "250" } }, "high.threshold"],
        ["a switch as text", { low: { enabled: "yes" } }, "low.enabled"],
        ["a kind that is not an object", { no_data: 20 }, "no_data"],
        ["an unknown kind", { very_low: { enabled: true } }, "very_low"],
        ["a misspelt field", { low: { treshold: 75 } }, "low.treshold"],
        [
          "quiet hours in an unknown time zone",
          { quiet_hours: { start: "22:00", end: "07:00", time_zone: "Mars/Olympus", days: [1] } },
          "quiet_hours.time_zone"
        ],
        [
          "quiet hours at 25:00",
          { quiet_hours: { start: "25:00", end: "07:00", time_zone: "Europe/Berlin", days: [1] } },
          "quiet_hours.start"
        ],
        [
          "quiet hours on day 8",
          { quiet_hours: { start: "22:00", end: "07:00", time_zone: "Europe/Berlin", days: [8] } },
          "quiet_hours.days[0]"
        ]
      ] as const
    ).map(([name, body, path]) => ({ name, body: JSON.stringify(body), path })),
    { name: "a body that is an array", body: "[]", path: "payload" },
    { name: "a body that is a number", body: "42", path: "payload" },
    { name: "a body that is null", body: "null", path: "payload" }
  ])("PUT /alert-settings with $name is 400 naming $path, and changes nothing", ({ body, path }) =>
    Effect.gen(function* () {
      const before = yield* currentSettings
      const refused = yield* rawAs("PUT", "/api/v1/alert-settings", body, { "if-match": before.etag })
      assert.strictEqual(refused.status, 400, JSON.stringify(refused.body))
      assert.strictEqual(refused.body._tag, "ValidationError")
      assert.isTrue(
        refused.body.issues?.some((issue) => issue.path === path),
        JSON.stringify(refused.body.issues)
      )
      assert.deepStrictEqual(yield* currentSettings, before)
    })
  )

  it.effect("a stale If-Match is 412, a missing one 428 once settings exist; neither changes anything", () =>
    Effect.gen(function* () {
      const first = yield* currentSettings
      const changed = JSON.stringify({ ...first.body, low: { ...first.body.low, threshold: 75 } })
      const written = yield* rawAs("PUT", "/api/v1/alert-settings", changed, { "if-match": first.etag })
      assert.strictEqual(written.status, 200, JSON.stringify(written.body))
      const now = yield* currentSettings
      assert.strictEqual(now.etag, written.etag)
      assert.strictEqual(now.body.low.threshold, 75)

      const again = JSON.stringify({ ...first.body, low: { ...first.body.low, threshold: 85 } })
      const stale = yield* rawAs("PUT", "/api/v1/alert-settings", again, { "if-match": first.etag })
      assert.deepStrictEqual([stale.status, stale.body._tag], [412, "PreconditionFailed"])
      const missing = yield* rawAs("PUT", "/api/v1/alert-settings", again)
      assert.deepStrictEqual([missing.status, missing.body._tag], [428, "PreconditionRequired"])
      assert.deepStrictEqual(yield* currentSettings, now)
    })
  )

  it.effect(
    "another user's alert or sensor, an unknown sensor, a snooze out of bounds: refused, nothing appended",
    () =>
      Effect.gen(function* () {
        const before = yield* eventsAppended
        const refusals = [
          [`/api/v1/alerts/${othersLow.alert_id}/acknowledge`, undefined, 404],
          [`/api/v1/alerts/${othersLow.alert_id}/snooze`, { minutes: 30 }, 404],
          ["/api/v1/sensors/api-cgm-x/stop", undefined, 404],
          ["/api/v1/sensors/never-posted/stop", undefined, 404],
          [`/api/v1/alerts/${openHigh.alert_id}/snooze`, { minutes: 14 }, 400],
          [`/api/v1/alerts/${openHigh.alert_id}/snooze`, { minutes: 241 }, 400],
          [`/api/v1/alerts/${openUrgentLow.alert_id}/snooze`, { minutes: 31 }, 400]
        ] as const
        for (const [path, body, status] of refusals) {
          const refused = yield* rawAs("POST", path, body === undefined ? undefined : JSON.stringify(body))
          assert.strictEqual(refused.status, status, `${path}: ${JSON.stringify(refused.body)}`)
          if (status === 400)
            assert.deepStrictEqual(
              refused.body.issues?.map((issue) => issue.path),
              ["minutes"]
            )
        }
        assert.strictEqual(yield* eventsAppended, before)

        // The caller's own alert, in any state, is accepted: one action on the sensor's key each.
        const acknowledged = yield* rawAs("POST", `/api/v1/alerts/${resolvedLow.alert_id}/acknowledge`, undefined)
        assert.strictEqual(acknowledged.status, 202, JSON.stringify(acknowledged.body))
        const snoozed = yield* rawAs(
          "POST",
          `/api/v1/alerts/${openUrgentLow.alert_id}/snooze`,
          JSON.stringify({ minutes: 30 })
        )
        assert.strictEqual(snoozed.status, 202, JSON.stringify(snoozed.body))
        assert.strictEqual(yield* eventsAppended, before + 2)
      })
  )
})
