import { randomUUID } from "node:crypto"
import type { ValidationError } from "@dexmon/api"
import { type AlertType, deliveryId, UserId, WebhookId } from "@dexmon/domain"
import { Webhooks } from "@dexmon/gateway"
import { DeliveryOutbox, PostgresDeliveryOutbox, PostgresWebhookStore, WebhookStore } from "@dexmon/ports"
import { DexMonClient } from "@dexmon/sdk"
import { layerEmbeddedPostgresTest } from "@dexmon/testing"
import { assert, layer } from "@effect/vitest"
import { Clock, ConfigProvider, Effect, Layer, Option, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { asUser, layerGatewayOnEmbeddedPostgres, rawRequest } from "./support/GatewayOnEmbeddedPostgres.ts"

const RECEIVER = "https://hooks.example.com/dexmon"

/** Registers an endpoint through the SDK as `user`, answering what the API answered (secret included). */
const register = (user: string, payload: { readonly url: string; readonly kinds?: ReadonlyArray<AlertType> | null }) =>
  asUser(user)(
    Effect.gen(function* () {
      const client = yield* DexMonClient
      return yield* client.webhooks.register({ payload })
    })
  )

/** The user's endpoints as the SDK lists them. */
const listed = (user: string) =>
  asUser(user)(
    Effect.gen(function* () {
      const client = yield* DexMonClient
      return (yield* client.webhooks.list()).items
    })
  )

/** Deliveries queued in the outbox for one endpoint, whatever their state: the outbox has no read by endpoint. */
const queuedFor = (webhookId: WebhookId) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{
      readonly n: number
    }>`SELECT count(*)::int AS n FROM webhook_deliveries WHERE webhook_id = ${webhookId}::uuid`
    return rows[0]!.n
  })

/** The endpoint as the store holds it, secret included. */
const stored = (user: string, id: WebhookId) =>
  Effect.gen(function* () {
    const store = yield* WebhookStore
    return yield* store.get(UserId.make(user), id)
  })

layer(layerGatewayOnEmbeddedPostgres("webhooks-api"), { timeout: 180_000, excludeTestServices: true })(
  "the gateway's webhook endpoints, through the SDK, on the PostgreSQL webhook store and delivery outbox",
  (it) => {
    it.effect("POST /webhooks answers 201 with the endpoint and its whsec_ secret; kinds default to every kind", () =>
      asUser("webhooks-register")(
        Effect.gen(function* () {
          const client = yield* DexMonClient
          const before = yield* Clock.currentTimeMillis
          const [created, response] = yield* client.webhooks.register({
            payload: { url: RECEIVER, kinds: ["URGENT_LOW", "LOW"] },
            responseMode: "decoded-and-response"
          })
          const after = yield* Clock.currentTimeMillis
          assert.strictEqual(response.status, 201)
          assert.isTrue(Schema.is(WebhookId)(created.id), created.id)
          assert.strictEqual(created.url, RECEIVER)
          assert.deepStrictEqual(created.kinds, ["URGENT_LOW", "LOW"])
          assert.isTrue(before <= created.created_at && created.created_at <= after, String(created.created_at))
          assert.match(created.secret, /^whsec_[0-9a-f]{64}$/)

          const everyKind = yield* client.webhooks.register({ payload: { url: `${RECEIVER}/all` } })
          assert.isNull(everyKind.kinds)
          assert.notStrictEqual(everyKind.id, created.id)
          assert.notStrictEqual(everyKind.secret, created.secret)
          const explicitlyEvery = yield* client.webhooks.register({ payload: { url: `${RECEIVER}/null`, kinds: null } })
          assert.isNull(explicitlyEvery.kinds)
        })
      )
    )

    it.effect("POST /webhooks takes a URL of 2048 characters, the longest allowed, exactly as given", () =>
      Effect.gen(function* () {
        const url = `${RECEIVER}/`.padEnd(2048, "a")
        const created = yield* register("webhooks-longest", { url })
        assert.strictEqual(created.url, url)
        assert.deepStrictEqual(
          (yield* listed("webhooks-longest")).map((webhook) => webhook.url),
          [url]
        )
      })
    )

    it.effect("GET /webhooks lists the caller's endpoints oldest first, with no secret anywhere in the response", () =>
      Effect.gen(function* () {
        const user = "webhooks-list"
        const first = yield* register(user, { url: `${RECEIVER}/1`, kinds: ["HIGH"] })
        const second = yield* register(user, { url: `${RECEIVER}/2` })
        yield* register("webhooks-list-other", { url: `${RECEIVER}/theirs` })

        const { secret: _first, ...firstView } = first
        const { secret: _second, ...secondView } = second
        assert.deepStrictEqual(yield* listed(user), [firstView, secondView])

        const raw = yield* rawRequest(user, "GET", "/api/v1/webhooks")
        assert.strictEqual(raw.status, 200, raw.text)
        assert.notInclude(raw.text, "secret")
        assert.notInclude(raw.text, "whsec_")
        assert.notInclude(raw.text, first.secret)
        assert.notInclude(raw.text, second.secret)
      })
    )

    it.effect("POST /webhooks/{id}/rotate-secret answers a new secret, which the store now holds", () =>
      asUser("webhooks-rotate")(
        Effect.gen(function* () {
          const client = yield* DexMonClient
          const created = yield* client.webhooks.register({ payload: { url: RECEIVER } })
          const rotated = yield* client.webhooks.rotateSecret({ params: { webhook_id: created.id } })
          assert.strictEqual(rotated.id, created.id)
          assert.match(rotated.secret, /^whsec_[0-9a-f]{64}$/)
          assert.notStrictEqual(rotated.secret, created.secret)
          const held = yield* stored("webhooks-rotate", created.id)
          assert.strictEqual(Option.getOrThrow(held).secret, rotated.secret)

          const again = yield* client.webhooks.rotateSecret({ params: { webhook_id: created.id } })
          assert.notStrictEqual(again.secret, rotated.secret)
        })
      )
    )

    it.effect("POST /webhooks/{id}/test answers 202 with a delivery id, queued in the outbox as PENDING", () =>
      asUser("webhooks-test")(
        Effect.gen(function* () {
          const client = yield* DexMonClient
          const created = yield* client.webhooks.register({ payload: { url: RECEIVER } })
          const [accepted, response] = yield* client.webhooks.test({
            params: { webhook_id: created.id },
            responseMode: "decoded-and-response"
          })
          assert.strictEqual(response.status, 202)

          const outbox = yield* DeliveryOutbox
          const queued = Option.getOrThrow(yield* outbox.get(accepted.delivery_id))
          assert.strictEqual(queued.state, "PENDING")
          assert.strictEqual(queued.webhook_id, created.id)
          assert.strictEqual(queued.user_id, "webhooks-test")
          assert.strictEqual(queued.attempts, 0)
          assert.isNull(queued.alert_id)
          assert.isNull(queued.last_error)
          // The id a receiver drops repeats by: the notification's and the endpoint's, hashed.
          assert.strictEqual(accepted.delivery_id, deliveryId(queued.notification_id, created.id))
          const body = JSON.parse(queued.body)
          assert.strictEqual(body.schema, "webhook-test")
          assert.strictEqual(body.notification_id, queued.notification_id)
          assert.strictEqual(body.webhook_id, created.id)
          assert.strictEqual(body.user_id, "webhooks-test")

          // Each test is a notification of its own.
          const another = yield* client.webhooks.test({ params: { webhook_id: created.id } })
          assert.notStrictEqual(another.delivery_id, accepted.delivery_id)
          assert.strictEqual(yield* queuedFor(created.id), 2)
        })
      )
    )

    it.effect("GET /webhooks/{id}/deliveries is empty before any attempt, a test delivery queued or not", () =>
      asUser("webhooks-deliveries")(
        Effect.gen(function* () {
          const client = yield* DexMonClient
          const created = yield* client.webhooks.register({ payload: { url: RECEIVER } })
          const none = yield* client.webhooks.deliveries({ params: { webhook_id: created.id }, query: {} })
          assert.deepStrictEqual(none.items, [])
          // No deliverer runs here: the queued test is not attempted, so nothing is recorded.
          yield* client.webhooks.test({ params: { webhook_id: created.id } })
          const still = yield* client.webhooks.deliveries({ params: { webhook_id: created.id }, query: { limit: 5 } })
          assert.deepStrictEqual(still.items, [])
        })
      )
    )

    it.effect("DELETE /webhooks/{id} answers 204; then remove, rotate-secret, test and deliveries answer 404", () =>
      asUser("webhooks-remove")(
        Effect.gen(function* () {
          const client = yield* DexMonClient
          const kept = yield* client.webhooks.register({ payload: { url: `${RECEIVER}/kept` } })
          const gone = yield* client.webhooks.register({ payload: { url: `${RECEIVER}/gone` } })
          const params = { webhook_id: gone.id }
          const [, response] = yield* client.webhooks.remove({ params, responseMode: "decoded-and-response" })
          assert.strictEqual(response.status, 204)
          assert.deepStrictEqual(
            (yield* client.webhooks.list()).items.map((webhook) => webhook.id),
            [kept.id]
          )
          assert.isTrue(Option.isNone(yield* stored("webhooks-remove", gone.id)))

          const unknown = { webhook_id: WebhookId.make(randomUUID()) }
          for (const webhook of [params, unknown]) {
            const refusals = [
              yield* Effect.flip(client.webhooks.remove({ params: webhook })),
              yield* Effect.flip(client.webhooks.rotateSecret({ params: webhook })),
              yield* Effect.flip(client.webhooks.test({ params: webhook })),
              yield* Effect.flip(client.webhooks.deliveries({ params: webhook, query: {} }))
            ]
            assert.deepStrictEqual(
              refusals.map((error) => error._tag),
              ["NotFound", "NotFound", "NotFound", "NotFound"]
            )
          }
          assert.strictEqual(yield* queuedFor(gone.id), 0)
        })
      )
    )

    const USER = "webhooks-refused"
    it.effect.each<{ readonly name: string; readonly body: string; readonly path: string }>([
      ...(
        [
          ["a url that is not a URL", { url: "not a url" }, "url"],
          ["an ftp url", { url: "ftp://example.com/x" }, "url"],
          ["a url with a user name and password", { url: "https://user:pw@example.com/" }, "url"],
          ["an empty url", { url: "" }, "url"],
          ["a url of 2049 characters", { url: `${RECEIVER}/`.padEnd(2049, "a") }, "url"],
          ["a url that is not a string", { url: 42 }, "url"],
          ["no url", { kinds: ["LOW"] }, "url"],
          ["an unknown kind", { url: RECEIVER, kinds: ["VERY_LOW"] }, "kinds[0]"],
          ["an unknown kind after a known one", { url: RECEIVER, kinds: ["LOW", "VERY_LOW"] }, "kinds[1]"],
          ["no kinds", { url: RECEIVER, kinds: [] }, "kinds"],
          ["a kind named twice", { url: RECEIVER, kinds: ["LOW", "LOW"] }, "kinds"],
          ["kinds that are not an array", { url: RECEIVER, kinds: "LOW" }, "kinds"]
        ] as const
      ).map(([name, body, path]) => ({ name, body: JSON.stringify(body), path })),
      { name: "a body that is an array", body: "[]", path: "payload" },
      { name: "a body that is a string", body: JSON.stringify(RECEIVER), path: "payload" },
      { name: "a body that is null", body: "null", path: "payload" }
    ])("POST /webhooks with $name is 400 naming $path, and stores nothing", ({ body, path }) =>
      Effect.gen(function* () {
        const before = yield* listed(USER)
        const refused = yield* rawRequest(USER, "POST", "/api/v1/webhooks", body)
        assert.strictEqual(refused.status, 400, refused.text)
        assert.strictEqual(refused.body._tag, "ValidationError")
        assert.deepStrictEqual(
          refused.body.issues?.map((issue) => issue.path),
          [path],
          refused.text
        )
        assert.notInclude(refused.text, "whsec_")
        assert.deepStrictEqual(yield* listed(USER), before)
      })
    )

    it.effect.each<{ readonly name: string; readonly method: "POST" | "GET" | "DELETE"; readonly path: string }>([
      { name: "DELETE /webhooks/{id}", method: "DELETE", path: "/api/v1/webhooks/not-a-uuid" },
      { name: "rotate-secret", method: "POST", path: "/api/v1/webhooks/not-a-uuid/rotate-secret" },
      { name: "test", method: "POST", path: "/api/v1/webhooks/not-a-uuid/test" },
      { name: "deliveries", method: "GET", path: "/api/v1/webhooks/not-a-uuid/deliveries" }
    ])("$name with a malformed id is 400 naming webhook_id", ({ method, path }) =>
      Effect.gen(function* () {
        const refused = yield* rawRequest("webhooks-malformed", method, path)
        assert.strictEqual(refused.status, 400, refused.text)
        assert.strictEqual(refused.body._tag, "ValidationError")
        assert.deepStrictEqual(
          refused.body.issues?.map((issue) => issue.path),
          ["webhook_id"]
        )
      })
    )

    it.effect.each(["0", "1001", "1.5", "ten"])("GET /webhooks/{id}/deliveries?limit=%s is 400 naming limit", (limit) =>
      Effect.gen(function* () {
        const created = yield* register("webhooks-limit", { url: RECEIVER })
        const refused = yield* rawRequest(
          "webhooks-limit",
          "GET",
          `/api/v1/webhooks/${created.id}/deliveries?limit=${limit}`
        )
        assert.strictEqual(refused.status, 400, refused.text)
        // Text that is no number fails each check of the field, and each says so: one field all the same.
        assert.deepStrictEqual([...new Set(refused.body.issues?.map((issue) => issue.path))], ["limit"], refused.text)
      })
    )

    const OWNER = "webhooks-owner"
    const INTRUDER = "webhooks-intruder"
    it.effect.each<{ readonly name: string; readonly method: "POST" | "GET" | "DELETE"; readonly suffix: string }>([
      { name: "DELETE /webhooks/{id}", method: "DELETE", suffix: "" },
      { name: "POST /webhooks/{id}/rotate-secret", method: "POST", suffix: "/rotate-secret" },
      { name: "POST /webhooks/{id}/test", method: "POST", suffix: "/test" },
      { name: "GET /webhooks/{id}/deliveries", method: "GET", suffix: "/deliveries" }
    ])("$name on another user's webhook is 404 and changes nothing", ({ method, suffix }) =>
      Effect.gen(function* () {
        const created = yield* register(OWNER, { url: `${RECEIVER}/owned`, kinds: ["URGENT_LOW"] })
        const before = yield* listed(OWNER)

        const refused = yield* rawRequest(INTRUDER, method, `/api/v1/webhooks/${created.id}${suffix}`)
        assert.strictEqual(refused.status, 404, refused.text)
        assert.strictEqual(refused.body._tag, "NotFound")

        assert.deepStrictEqual(yield* listed(OWNER), before)
        assert.strictEqual(Option.getOrThrow(yield* stored(OWNER, created.id)).secret, created.secret)
        assert.strictEqual(yield* queuedFor(created.id), 0)
        assert.deepStrictEqual(yield* listed(INTRUDER), [])
      })
    )
  }
)

/**
 * The `Webhooks` service itself in the production profile, on the PostgreSQL
 * stores: production refuses `SECURITY_DISABLED`, so it is not reached over
 * HTTP here. Only this layer sees `DEXMON_PROFILE=production`; the embedded
 * PostgreSQL under it is the test's.
 */
const ProductionWebhooks = Webhooks.layer.pipe(
  Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: { DEXMON_PROFILE: "production" } }))),
  Layer.provideMerge(Layer.mergeAll(PostgresWebhookStore.layer, PostgresDeliveryOutbox.layer)),
  Layer.provideMerge(layerEmbeddedPostgresTest)
)

layer(ProductionWebhooks, { timeout: 180_000, excludeTestServices: true })(
  "webhook registration in production: https to public addresses only",
  (it) => {
    const USER = UserId.make("webhooks-production")
    it.effect.each<{ readonly name: string; readonly url: string; readonly says: RegExp }>([
      { name: "plain http", url: "http://example.com/", says: /https/ },
      { name: "an IPv4 loopback literal", url: "https://127.0.0.1/", says: /127\.0\.0\.1.*loopback/ },
      { name: "a private IPv4 literal", url: "https://10.1.2.3/", says: /10\.1\.2\.3.*private/ },
      { name: "the IPv6 loopback", url: "https://[::1]/", says: /::1.*loopback/ },
      {
        name: "the cloud metadata service",
        url: "https://169.254.169.254/latest/meta-data",
        says: /169\.254\.169\.254.*link-local/
      },
      { name: "loopback in decimal", url: "https://2130706433/", says: /127\.0\.0\.1.*loopback/ },
      { name: "a private IPv4 address mapped into IPv6", url: "https://[::ffff:10.0.0.1]/", says: /private/ },
      {
        name: "a name that resolves to loopback",
        url: "https://localhost/",
        says: /resolves to an address that is not public/
      }
    ])("$name ($url) is refused naming url, and nothing is stored", ({ url, says }) =>
      Effect.gen(function* () {
        const webhooks = yield* Webhooks
        const refused = yield* Effect.flip(webhooks.register(USER, { url }))
        assert.strictEqual(refused._tag, "ValidationError")
        const { issues } = refused as ValidationError
        assert.deepStrictEqual(
          issues.map((issue) => issue.path),
          ["url"]
        )
        assert.match(issues[0]!.message, says)
        assert.deepStrictEqual(yield* webhooks.list(USER), [])
      })
    )

    it.effect("an https URL with a public literal address is registered without a DNS lookup", () =>
      Effect.gen(function* () {
        const user = UserId.make("webhooks-production-public")
        const webhooks = yield* Webhooks
        const created = yield* webhooks.register(user, { url: "https://93.184.215.14/hook", kinds: ["URGENT_LOW"] })
        assert.match(created.secret, /^whsec_/)
        const store = yield* WebhookStore
        const held = Option.getOrThrow(yield* store.get(user, created.id))
        assert.strictEqual(held.url, "https://93.184.215.14/hook")
        assert.deepStrictEqual(held.kinds, ["URGENT_LOW"])
        assert.strictEqual(held.secret, created.secret)
      })
    )
  }
)
