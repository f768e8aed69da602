import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { GatewayApi } from "@dexmon/api"
import { ReadingsQuery } from "@dexmon/archive"
import { Alert, type AlertId, type AlertStatus, type AlertType, deriveAlertId, SensorId, UserId } from "@dexmon/domain"
import { GatewayHttp } from "@dexmon/gateway"
import { HealthHttp, layerHttpServer, Readiness } from "@dexmon/platform"
import {
  AlertStore,
  freePort,
  LocalFolderArchiveStore,
  PostgresAlertStore,
  SqlArchiveLedger,
  SqlReadingStore
} from "@dexmon/ports"
import { layerEmbeddedPostgresTest } from "@dexmon/ports/testing"
import { DexMonClient } from "@dexmon/sdk"
import { assert, layer } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Layer } from "effect"
import { FetchHttpClient, HttpClient } from "effect/http"

const MINUTE = 60_000
const t0 = Date.parse("2026-11-24T08:00:00.000Z")
const range = { from: t0 - 60 * MINUTE, to: t0 + 24 * 60 * MINUTE }
const USER = "alerts-api-user"
const OTHER = "alerts-api-other"

/** Where the gateway under test listens. */
class Gateway extends Context.Service<Gateway, { readonly baseUrl: string }>()("dexmon/test/AlertsApi/Gateway") {}

/**
 * The gateway's HTTP server as `services/gateway/src/main.ts` composes it, on a
 * free port, with the PostgreSQL alert store (and the readings store and archive
 * it also serves) on a throw-away embedded PostgreSQL; the caller is `X-User-Id`.
 */
const GatewayOnEmbeddedPostgres = Layer.unwrap(
  Effect.gen(function* () {
    const port = yield* freePort
    const archiveDir = yield* Effect.acquireRelease(
      Effect.sync(() => mkdtempSync(join(tmpdir(), "dexmon-alerts-api-"))),
      (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
    )
    const stores = Layer.mergeAll(
      PostgresAlertStore.layer,
      SqlArchiveLedger.layer,
      LocalFolderArchiveStore.layer(archiveDir)
    ).pipe(Layer.provideMerge(SqlReadingStore.layer), Layer.provideMerge(layerEmbeddedPostgresTest))
    const env = { PORT: String(port), HOST: "127.0.0.1", SECURITY_DISABLED: "true" }
    return layerHttpServer(GatewayApi, Layer.mergeAll(GatewayHttp, HealthHttp)).pipe(
      Layer.provide(Readiness.layer),
      Layer.provide(ReadingsQuery.layer),
      Layer.provideMerge(stores),
      Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env }))),
      Layer.merge(Layer.succeed(Gateway, { baseUrl: `http://127.0.0.1:${port}` }))
    )
  })
)

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
    last_reading_at: ended ?? started + 5 * MINUTE
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

/** Runs `effect` with the SDK, as `user` (the development caller, `X-User-Id`). */
const asUser =
  (user: string) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.gen(function* () {
      const { baseUrl } = yield* Gateway
      return yield* Effect.provide(effect, DexMonClient.layer({ baseUrl, userId: user }))
    })

/** A GET outside the SDK, for requests the typed client would refuse to encode: status and JSON body. */
const rawGet = Effect.fn("rawGet")(function* (path: string) {
  const { baseUrl } = yield* Gateway
  const client = yield* HttpClient.HttpClient
  const response = yield* client.get(`${baseUrl}${path}`, { headers: { "x-user-id": USER } })
  const body = (yield* response.json) as {
    readonly _tag?: string
    readonly issues?: ReadonlyArray<{ readonly path: string; readonly message: string }>
    readonly items?: ReadonlyArray<{ readonly alert_id: string }>
  }
  return { status: response.status, body }
}, Effect.provide(FetchHttpClient.layer))

layer(Seeded.pipe(Layer.provideMerge(GatewayOnEmbeddedPostgres)), { timeout: 180_000, excludeTestServices: true })(
  "the gateway's alert endpoints, through the SDK, on the PostgreSQL alert store",
  (it) => {
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
          assert.deepStrictEqual(all.items[0], openUrgentLow)

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
        assert.deepStrictEqual(mine.items[0], openUrgentLow)
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

          assert.deepStrictEqual(yield* get(resolvedLow.alert_id), resolvedLow)
          assert.deepStrictEqual(yield* get(openBackfilled.alert_id), openBackfilled)

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
  }
)
