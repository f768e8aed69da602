import { spawnSync } from "node:child_process"
import { resolve } from "node:path"
import { decodeAlertNotification, SensorId, WebhookId } from "@dexmon/domain"
import { DexMonClient } from "@dexmon/sdk"
import {
  type Answer,
  eventually,
  freshDatabase,
  makeDexMonProcessWith,
  makeServiceProcess,
  makeWebhookReceiver,
  requiredServer
} from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect } from "effect"

const USER = "webhook-user"

/** `pnpm dlq` as an operator runs it, on this run's topics. */
const dlq = (args: ReadonlyArray<string>, env: Record<string, string | undefined>) =>
  Effect.sync(() => {
    const result = spawnSync(process.execPath, [resolve(import.meta.dirname, "../../dlq/src/main.ts"), ...args], {
      env: env as NodeJS.ProcessEnv,
      encoding: "utf8",
      timeout: 60_000
    })
    assert.strictEqual(result.status, 0, `${args.join(" ")}: ${result.stderr}${result.stdout}`)
    return result.stdout
  })

const gaps = (times: ReadonlyArray<number>) => times.slice(1).map((time, i) => time - times[i]!)

describe("webhook delivery, each service its own process on Kafka and PostgreSQL", () => {
  it.live(
    "signed, once per endpoint, retried with growing gaps, a hanging endpoint slows no other, a SIGKILL mid-retry loses nothing, the spent budget goes to the DLQ and a replay delivers it",
    () =>
      Effect.gen(function* () {
        const run = `hook${Date.now().toString(36)}`
        const database = yield* freshDatabase({ name: `dexmon_${run}` })
        const env: Record<string, string | undefined> = {
          PATH: process.env.PATH,
          SECURITY_DISABLED: "true",
          KAFKA_BROKERS: requiredServer("KAFKA_BROKERS"),
          DATABASE_URL: database.url,
          DEXMON_TOPIC_PREFIX: `${run}.`,
          DEXMON_NOTIFIER_GROUP: `${run}-notifier`,
          DEXMON_DELIVERER_GROUP: `${run}-deliverer`,
          // Far longer than the test waits for the other endpoints: the hanging endpoint's request stays open.
          DEXMON_WEBHOOK_TIMEOUT: "120s",
          DEXMON_WEBHOOK_RETRY_BUDGET: "45s"
        }
        let deadRecovered = false
        const ok = yield* makeWebhookReceiver(() => ({ status: 200 }))
        const flaky = yield* makeWebhookReceiver((_, nth): Answer => (nth <= 2 ? { status: 503 } : { status: 204 }))
        const hanging = yield* makeWebhookReceiver(() => "hang")
        const dead = yield* makeWebhookReceiver(() => (deadRecovered ? { status: 200 } : { status: 503 }))

        const receiver = yield* makeServiceProcess("receiver", env)
        const notifier = yield* makeServiceProcess("notifier", env)
        const gateway = yield* makeServiceProcess("gateway", env)
        const deliverer = yield* makeServiceProcess("deliverer", env)
        yield* Effect.all([receiver.start, notifier.start, gateway.start, deliverer.start], {
          concurrency: "unbounded"
        })
        const app = (baseUrl: string) => DexMonClient.layer({ baseUrl, userId: USER })

        const ids = yield* Effect.gen(function* () {
          const client = yield* DexMonClient
          const register = Effect.fnUntraced(function* (endpoint: { url: string; useSecret: (s: string) => void }) {
            const created = yield* client.webhooks.register({ payload: { url: endpoint.url } })
            endpoint.useSecret(created.secret)
            return created.id
          })
          return {
            ok: yield* register(ok),
            flaky: yield* register(flaky),
            hanging: yield* register(hanging),
            dead: yield* register(dead)
          }
        }).pipe(Effect.provide(app(gateway.baseUrl)))

        const post = (sensor: string) =>
          Effect.gen(function* () {
            const client = yield* DexMonClient
            const now = yield* Clock.currentTimeMillis
            yield* client.ingestion.postSensor({
              payload: { sensor_id: SensorId.make(`${run}-${sensor}`), timestamp: now, glucose_value: 50 }
            })
          }).pipe(Effect.provide(app(receiver.baseUrl)))

        // The first urgent low: every endpoint gets its delivery.
        yield* post("first")
        yield* eventually(Effect.sync(ok.received), (r) => r.length === 1, { times: 300 })
        // While the hanging endpoint holds its request open, a second urgent low reaches the others all the same.
        yield* eventually(Effect.sync(hanging.openRequests), (open) => open >= 1, { times: 300 })
        yield* post("second")
        const both = yield* eventually(Effect.sync(ok.received), (r) => r.length === 2, { times: 300 })
        // Still its first request, open: the healthy endpoint's second delivery did not wait for it.
        assert.strictEqual(hanging.received().filter((r) => r.delivery === hanging.received()[0]!.delivery).length, 1)
        assert.isAtLeast(hanging.openRequests(), 1, "the hanging endpoint still held its first request")

        // Signed with each endpoint's secret; one request per delivery id at the healthy endpoint.
        assert.isTrue(both.every((request) => request.verified))
        assert.strictEqual(new Set(both.map((request) => request.delivery)).size, 2)
        const notifications = yield* Effect.forEach(both, (request) => decodeAlertNotification(request.body))
        assert.deepStrictEqual(
          notifications.map((n) => [n.type, n.alert.alert_type, n.user_id]),
          [
            ["alert", "URGENT_LOW", USER],
            ["alert", "URGENT_LOW", USER]
          ]
        )

        // The flaky endpoint: 503, 503, then 204 once; the second gap (5-10 s) is longer than the first (1-5 s).
        const flakyFirst = yield* eventually(
          Effect.sync(() => flaky.received().filter((r) => r.delivery !== "" && r.answered === 204)),
          (done) => done.length === 2,
          { times: 600 }
        )
        assert.strictEqual(flakyFirst.length, 2)
        for (const delivery of new Set(flaky.received().map((r) => r.delivery))) {
          const requests = flaky.received().filter((r) => r.delivery === delivery)
          assert.deepStrictEqual(
            requests.map((r) => r.answered),
            [503, 503, 204],
            delivery
          )
          assert.isTrue(requests.every((r) => r.verified))
          const [g1, g2] = gaps(requests.map((r) => r.at))
          assert.isAbove(g2!, g1!, `growing gaps for ${delivery}`)
        }

        // Every attempt is recorded and readable through the API.
        const attempts = yield* Effect.gen(function* () {
          const client = yield* DexMonClient
          return yield* client.webhooks.deliveries({ params: { webhook_id: WebhookId.make(ids.flaky) }, query: {} })
        }).pipe(Effect.provide(app(gateway.baseUrl)))
        assert.deepStrictEqual(attempts.items.map((a) => a.outcome).sort(), [
          "DELIVERED",
          "DELIVERED",
          "RETRY",
          "RETRY",
          "RETRY",
          "RETRY"
        ])

        // The deliverer killed with SIGKILL while the dead endpoint's deliveries wait for their next retry.
        yield* eventually(Effect.sync(dead.received), (r) => r.length >= 4, { times: 300 })
        yield* deliverer.kill9
        const beforeKill = dead.received().length
        yield* deliverer.start
        // It resumes from the outbox: more attempts, the same delivery ids, until the budget is spent.
        const retried = yield* eventually(Effect.sync(dead.received), (r) => r.length > beforeKill, { times: 300 })
        assert.deepStrictEqual(
          new Set(retried.map((r) => r.delivery)),
          new Set(retried.slice(0, 2).map((r) => r.delivery))
        )

        // After the budget both dead deliveries are in the DLQ.
        const letters = yield* eventually(
          dlq(["list", "--queue", "deliveries", "--json"], env).pipe(
            Effect.map((out) =>
              out
                .split("\n")
                .filter((line) => line.startsWith("{"))
                .map((line) => JSON.parse(line) as { partition: number; offset: number; key: string })
            )
          ),
          (found) => found.filter((letter) => letter.key === ids.dead).length === 2,
          { every: "2 seconds", times: 60 }
        )
        const deadLetters = letters.filter((letter) => letter.key === ids.dead)
        const deadDeliveries = new Set(dead.received().map((r) => r.delivery))
        assert.strictEqual(deadDeliveries.size, 2)
        assert.isTrue(dead.received().every((r) => r.answered === 503))

        // The endpoint is fixed; the operator replays its dead letters: each delivered once, under its delivery id.
        deadRecovered = true
        yield* dlq(["replay", "--queue", "deliveries", ...deadLetters.map((l) => `${l.partition}:${l.offset}`)], env)
        const delivered = yield* eventually(
          Effect.sync(() => dead.received().filter((r) => r.answered === 200)),
          (r) => r.length === 2,
          { times: 600 }
        )
        assert.deepStrictEqual(new Set(delivered.map((r) => r.delivery)), deadDeliveries)
        assert.isTrue(delivered.every((r) => r.verified))
        // Nothing else reached the healthy endpoint: each notification once.
        assert.strictEqual(ok.received().length, 2)
      }),
    300_000
  )

  it.live(
    "pnpm start on its embedded stores: an endpoint gets the urgent low of a posted reading and a test delivery, signed; alerts say SENT, NONE or FAILED",
    () =>
      Effect.gen(function* () {
        // A short retry budget, so a failing endpoint's deliveries are given up within the test.
        const dexmon = yield* makeDexMonProcessWith({ SECURITY_DISABLED: "true", DEXMON_WEBHOOK_RETRY_BUDGET: "8s" })
        yield* dexmon.start
        const endpoint = yield* makeWebhookReceiver(() => ({ status: 200 }))
        yield* Effect.gen(function* () {
          const client = yield* DexMonClient
          const created = yield* client.webhooks.register({ payload: { url: endpoint.url, kinds: ["URGENT_LOW"] } })
          endpoint.useSecret(created.secret)
          yield* client.webhooks.test({ params: { webhook_id: created.id } })
          const now = yield* Clock.currentTimeMillis
          // A HIGH first (not a kind the endpoint takes), then the urgent low.
          yield* client.ingestion.postSensor({
            payload: {
              readings: [
                { sensor_id: SensorId.make("embedded-cgm"), timestamp: now - 60_000, glucose_value: 300 },
                { sensor_id: SensorId.make("embedded-cgm"), timestamp: now, glucose_value: 50 }
              ]
            }
          })
          const received = yield* eventually(Effect.sync(endpoint.received), (r) => r.length === 2, { times: 300 })
          assert.isTrue(received.every((request) => request.verified))
          const schemas = received.map((request) => (JSON.parse(request.body) as { schema: string }).schema).sort()
          assert.deepStrictEqual(schemas, ["alert-notification", "webhook-test"])
          const alert = yield* decodeAlertNotification(
            received.find((r) => r.body.includes("alert-notification"))!.body
          )
          assert.deepStrictEqual([alert.type, alert.alert.alert_type], ["alert", "URGENT_LOW"])
          const attempts = yield* client.webhooks.deliveries({ params: { webhook_id: created.id }, query: {} })
          assert.deepStrictEqual(
            attempts.items.map((a) => [a.outcome, a.status_code]),
            [
              ["DELIVERED", 200],
              ["DELIVERED", 200]
            ]
          )
          // The delivery status beside the episode's: the urgent low was taken, the HIGH had no endpoint.
          const statuses = yield* eventually(
            client.alerts.list({ query: { from: now - 3_600_000, to: now + 60_000 } }),
            (page) => page.items.some((a) => a.alert_type === "URGENT_LOW" && a.delivery_status === "SENT")
          )
          assert.deepStrictEqual(statuses.items.map((a) => [a.alert_type, a.delivery_status]).sort(), [
            ["HIGH", "NONE"],
            ["URGENT_LOW", "SENT"]
          ])
        }).pipe(Effect.provide(DexMonClient.layer({ baseUrl: dexmon.baseUrl, userId: USER })))

        // Stopped with SIGTERM (a rolling update) while an attempt hangs: the delivery is handed back, and the
        // next start delivers it at once under the same id, not after the attempt's lease (over a minute).
        let hangs = true
        const slow = yield* makeWebhookReceiver(() => (hangs ? "hang" : { status: 200 }))
        yield* Effect.gen(function* () {
          const client = yield* DexMonClient
          const created = yield* client.webhooks.register({ payload: { url: slow.url } })
          slow.useSecret(created.secret)
          const now = yield* Clock.currentTimeMillis
          yield* client.ingestion.postSensor({
            payload: { sensor_id: SensorId.make("slow-cgm"), timestamp: now, glucose_value: 50 }
          })
        }).pipe(Effect.provide(DexMonClient.layer({ baseUrl: dexmon.baseUrl, userId: `${USER}-slow` })))
        yield* eventually(Effect.sync(slow.openRequests), (open) => open === 1, { times: 300 })
        yield* dexmon.stop
        hangs = false
        yield* dexmon.start
        const redelivered = yield* eventually(
          Effect.sync(() => slow.received().filter((r) => r.answered === 200)),
          (r) => r.length === 1,
          { times: 300 }
        )
        assert.strictEqual(redelivered[0]!.delivery, slow.received()[0]!.delivery)

        // A user whose only endpoint keeps failing: the alert's deliveries are given up, and it says FAILED.
        const failing = yield* makeWebhookReceiver(() => ({ status: 500 }))
        yield* Effect.gen(function* () {
          const client = yield* DexMonClient
          const created = yield* client.webhooks.register({ payload: { url: failing.url } })
          failing.useSecret(created.secret)
          const now = yield* Clock.currentTimeMillis
          yield* client.ingestion.postSensor({
            payload: { sensor_id: SensorId.make("failing-cgm"), timestamp: now, glucose_value: 50 }
          })
          const failed = yield* eventually(
            client.alerts.active(),
            (active) => active.items.some((a) => a.delivery_status === "FAILED"),
            { times: 300 }
          )
          assert.deepStrictEqual(
            failed.items.map((a) => [a.alert_type, a.delivery_status]),
            [["URGENT_LOW", "FAILED"]]
          )
          assert.isAtLeast(failing.received().length, 2)
        }).pipe(Effect.provide(DexMonClient.layer({ baseUrl: dexmon.baseUrl, userId: `${USER}-failing` })))
      }),
    120_000
  )
})
