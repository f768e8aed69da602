import { randomBytes, randomUUID } from "node:crypto"
import { deliveryId, UserId, WebhookId } from "@dexmon/domain"
import { assert, layer } from "@effect/vitest"
import { Effect, type Layer, Option } from "effect"
import {
  type Delivery,
  type DeliveryAttempt,
  DeliveryOutbox,
  type NewDelivery,
  type NextStep
} from "../../src/index.ts"

let runCounter = 0
const newRun = () => `outbox${Date.now().toString(36)}${runCounter++}`

const DAY = 86_400_000
let windowCounter = 0
/**
 * `claim` takes whatever is due in the whole outbox, so each test works in a
 * time window of its own, 30 days below every earlier test's: what an earlier
 * test left PENDING is never due at a later test's `now`. The suites run on a
 * fresh database per file.
 */
const newWindow = () => 1_900_000_000_000 - windowCounter++ * 30 * DAY

/** A W3C `traceparent` of a trace of its own. */
const newTraceparent = () => `00-${randomBytes(16).toString("hex")}-${randomBytes(8).toString("hex")}-01`

/** Deliveries and endpoints of one test's own users, each delivery in a trace of its own unless told. */
const fixture = () => {
  const run = newRun()
  let notifications = 0
  const user = (name: string) => UserId.make(`${run}-${name}`)
  const endpoint = () => WebhookId.make(randomUUID())
  const delivery = (
    userId: UserId,
    webhookId: WebhookId,
    dueAt: number,
    alertId: string | null = `alert-${run}`,
    traceparent: string | null = newTraceparent()
  ): NewDelivery => {
    const notificationId = `${run}-n${notifications++}`
    return {
      delivery_id: deliveryId(notificationId, webhookId),
      webhook_id: webhookId,
      user_id: userId,
      notification_id: notificationId,
      alert_id: alertId,
      body: JSON.stringify({ notification_id: notificationId, kind: "LOW", text: 'émoji 🩸, "quotes"' }),
      due_at: dueAt,
      traceparent
    }
  }
  return { run, user, endpoint, delivery }
}

/** A delivery as `enqueue` stores it. */
const queued = (delivery: NewDelivery): Delivery => ({
  ...delivery,
  attempts: 0,
  next_attempt_at: delivery.due_at,
  state: "PENDING",
  last_error: null
})

const attemptOf = (
  delivery: NewDelivery,
  attempt: number,
  at: number,
  result: Pick<DeliveryAttempt, "status_code" | "latency_ms" | "error" | "outcome">
): DeliveryAttempt => ({
  delivery_id: delivery.delivery_id,
  webhook_id: delivery.webhook_id,
  user_id: delivery.user_id,
  notification_id: delivery.notification_id,
  attempt,
  at,
  ...result
})

const delivered = { status_code: 200, latency_ms: 12, error: null, outcome: "DELIVERED" } as const
const deliveredStep: NextStep = { state: "DELIVERED" }

const ids = (deliveries: ReadonlyArray<{ readonly delivery_id: string }>) => deliveries.map((d) => d.delivery_id)

const getSome = (deliveryId: string) =>
  Effect.gen(function* () {
    const found = yield* (yield* DeliveryOutbox).get(deliveryId)
    assert.isTrue(Option.isSome(found), `delivery ${deliveryId} is there`)
    return Option.getOrThrow(found)
  })

const wide = { limit: 100, perWebhook: 100, lease: 60_000 }

/** The behaviour every layer of the delivery-outbox port must have. */
export const deliveryOutboxContract = (name: string, outboxLayer: Layer.Layer<DeliveryOutbox, unknown>) =>
  layer(outboxLayer, { timeout: 60_000, excludeTestServices: true })(`DeliveryOutbox contract: ${name}`, (it) => {
    it.effect("enqueue queues each delivery once: a queued delivery_id is left as it is and counts 0", () =>
      Effect.gen(function* () {
        const outbox = yield* DeliveryOutbox
        const base = newWindow()
        const { user, endpoint, delivery } = fixture()
        const [alice, webhook] = [user("alice"), endpoint()]
        const [a, b, c] = [
          delivery(alice, webhook, base),
          delivery(alice, webhook, base + 1),
          delivery(alice, webhook, base + 2, null)
        ]
        yield* outbox.ping
        assert.strictEqual(yield* outbox.enqueue([]), 0)
        assert.strictEqual(yield* outbox.enqueue([a, b]), 2)
        assert.deepStrictEqual(yield* getSome(a.delivery_id), queued(a))
        const changed = { ...a, body: '{"changed":true}', due_at: base - 1_000, alert_id: null }
        assert.strictEqual(yield* outbox.enqueue([changed, c, c]), 1, "only c is new, once")
        assert.deepStrictEqual(yield* getSome(a.delivery_id), queued(a), "a's row, body included, is unchanged")
        assert.deepStrictEqual(yield* getSome(c.delivery_id), queued(c))
        // Queued again once it is delivered: still one row, still delivered.
        yield* outbox.record(attemptOf(b, 1, base + 10, delivered), deliveredStep)
        assert.strictEqual(yield* outbox.enqueue([b]), 0)
        assert.strictEqual((yield* getSome(b.delivery_id)).state, "DELIVERED")
        assert.isTrue(Option.isNone(yield* outbox.get(deliveryId("no such notification", webhook))))
      })
    )

    it.effect(
      "a delivery keeps the trace it was queued in through claims and attempts; one queued in none keeps none",
      () =>
        Effect.gen(function* () {
          const outbox = yield* DeliveryOutbox
          const now = newWindow()
          const { user, endpoint, delivery } = fixture()
          const [alice, webhook] = [user("alice"), endpoint()]
          const traced = delivery(alice, webhook, now - 20)
          const untraced = delivery(alice, webhook, now - 10, "alert-untraced", null)
          assert.notStrictEqual(traced.traceparent, null)
          yield* outbox.enqueue([traced, untraced])
          const traces = (deliveries: ReadonlyArray<Delivery>) => deliveries.map((d) => [d.delivery_id, d.traceparent])
          assert.deepStrictEqual(traces(yield* outbox.claim(now, { ...wide, lease: 1_000 })), [
            [traced.delivery_id, traced.traceparent],
            [untraced.delivery_id, null]
          ])
          // A retry: claimed again once its lease is over, still in the trace it was queued in.
          yield* outbox.record(
            attemptOf(traced, 1, now, { status_code: 503, latency_ms: 3, error: "HTTP 503", outcome: "RETRY" }),
            { state: "PENDING", next_attempt_at: now + 5_000 },
            now + 1_000
          )
          assert.deepStrictEqual(traces(yield* outbox.claim(now + 5_000, wide)), [
            [untraced.delivery_id, null],
            [traced.delivery_id, traced.traceparent]
          ])
          assert.strictEqual((yield* getSome(traced.delivery_id)).traceparent, traced.traceparent)
        })
    )

    it.effect("claim answers the due PENDING deliveries only, oldest first, leased until now + lease", () =>
      Effect.gen(function* () {
        const outbox = yield* DeliveryOutbox
        const now = newWindow()
        const { user, endpoint, delivery } = fixture()
        const alice = user("alice")
        const [w1, w2] = [endpoint(), endpoint()]
        const due = [delivery(alice, w2, now - 3_000), delivery(alice, w1, now - 1_000), delivery(alice, w1, now)]
        const notYet = delivery(alice, w1, now + 1)
        const done = delivery(alice, w1, now - 5_000)
        const failed = delivery(alice, w2, now - 4_000)
        assert.strictEqual(yield* outbox.enqueue([notYet, due[2]!, done, due[0]!, failed, due[1]!]), 6)
        yield* outbox.record(attemptOf(done, 1, now - 4_900, delivered), deliveredStep)
        yield* outbox.record(
          attemptOf(failed, 1, now - 3_900, { status_code: 410, latency_ms: 5, error: "HTTP 410", outcome: "FAILED" }),
          { state: "FAILED", error: "gone" }
        )
        const claimed = yield* outbox.claim(now, { limit: 10, perWebhook: 10, lease: 30_000 })
        assert.deepStrictEqual(
          claimed,
          due.map((d) => ({ ...queued(d), next_attempt_at: now + 30_000 })),
          "due PENDING only, oldest first, each leased"
        )
        for (const d of due) assert.strictEqual((yield* getSome(d.delivery_id)).next_attempt_at, now + 30_000)
        assert.deepStrictEqual(
          yield* getSome(notYet.delivery_id),
          queued(notYet),
          "a delivery not yet due is untouched"
        )
      })
    )

    it.effect("claim takes at most perWebhook of any endpoint and limit in all", () =>
      Effect.gen(function* () {
        const outbox = yield* DeliveryOutbox
        const now = newWindow()
        const { user, endpoint, delivery } = fixture()
        const alice = user("alice")
        const bob = user("bob")
        const [a, b, c] = [endpoint(), endpoint(), endpoint()]
        // Endpoint a has a backlog older than everything else.
        const fromA = Array.from({ length: 8 }, (_, i) => delivery(alice, a, now - 10_000 + i))
        const fromB = Array.from({ length: 2 }, (_, i) => delivery(bob, b, now - 5_000 + i))
        const fromC = [delivery(alice, c, now - 1_000)]
        assert.strictEqual(yield* outbox.enqueue([...fromC, ...fromB, ...fromA]), 11)
        const options = { limit: 5, perWebhook: 2, lease: 60_000 }
        assert.deepStrictEqual(
          ids(yield* outbox.claim(now, options)),
          ids([fromA[0]!, fromA[1]!, fromB[0]!, fromB[1]!, fromC[0]!]),
          "a's backlog takes two places, not five"
        )
        assert.deepStrictEqual(
          ids(yield* outbox.claim(now, { ...options, limit: 3 })),
          ids([fromA[2]!, fromA[3]!]),
          "two of a's, though the limit leaves room for a third"
        )
        assert.deepStrictEqual(
          ids(yield* outbox.claim(now, { ...options, limit: 1, perWebhook: 10 })),
          ids([fromA[4]!])
        )
        assert.deepStrictEqual(yield* outbox.claim(now, { ...options, limit: 0 }), [])
        assert.deepStrictEqual(yield* outbox.claim(now, { ...options, perWebhook: 0 }), [])
        assert.deepStrictEqual(ids(yield* outbox.claim(now, wide)), ids(fromA.slice(5)))
      })
    )

    it.effect("claim leaves out the endpoints it is told to exclude", () =>
      Effect.gen(function* () {
        const outbox = yield* DeliveryOutbox
        const now = newWindow()
        const { user, endpoint, delivery } = fixture()
        const alice = user("alice")
        const [a, b] = [endpoint(), endpoint()]
        const fromA = [delivery(alice, a, now - 2), delivery(alice, a, now - 1)]
        const fromB = [delivery(alice, b, now - 4), delivery(alice, b, now - 3)]
        yield* outbox.enqueue([...fromA, ...fromB])
        assert.deepStrictEqual(ids(yield* outbox.claim(now, { ...wide, excluding: [b] })), ids(fromA))
        assert.deepStrictEqual(ids(yield* outbox.claim(now, { ...wide, excluding: [] })), ids(fromB))
      })
    )

    it.effect("a claim is a lease: none again at the same now, all again once the lease is over", () =>
      Effect.gen(function* () {
        const outbox = yield* DeliveryOutbox
        const now = newWindow()
        const { user, endpoint, delivery } = fixture()
        const alice = user("alice")
        const [a, b] = [endpoint(), endpoint()]
        const deliveries = [delivery(alice, a, now - 30), delivery(alice, b, now - 20), delivery(alice, a, now - 10)]
        yield* outbox.enqueue(deliveries)
        const lease = { ...wide, lease: 60_000 }
        const first = yield* outbox.claim(now, lease)
        assert.deepStrictEqual(ids(first), ids(deliveries))
        assert.deepStrictEqual(yield* outbox.claim(now, lease), [], "a second claim at the same now gets none")
        assert.deepStrictEqual(yield* outbox.claim(now + 59_999, lease), [], "nor one just before the lease ends")
        // As after a worker was killed mid-attempt: nothing was recorded, and the lease brings them back.
        const again = yield* outbox.claim(now + 60_000, lease)
        assert.deepStrictEqual(
          again,
          deliveries.map((d) => ({ ...queued(d), next_attempt_at: now + 120_000 })),
          "the same deliveries, untouched but for the new lease"
        )
      })
    )

    it.effect("6 concurrent claims over 50 due deliveries never answer one twice, and together answer all", () =>
      Effect.gen(function* () {
        const outbox = yield* DeliveryOutbox
        const now = newWindow()
        const { user, endpoint, delivery } = fixture()
        const alice = user("alice")
        const endpoints = Array.from({ length: 5 }, endpoint)
        const deliveries = Array.from({ length: 50 }, (_, i) => delivery(alice, endpoints[i % 5]!, now - 50_000 + i))
        assert.strictEqual(yield* outbox.enqueue(deliveries), 50)
        const seen = new Map<string, number>()
        // Rounds of 6 claims at once, until a round finds nothing: claims that lose a race take less in that round.
        for (let round = 0; ; round++) {
          assert.isBelow(round, 50, "the claims ran out of rounds before taking every delivery")
          const claims = yield* Effect.forEach(
            Array.from({ length: 6 }),
            () => outbox.claim(now, { limit: 10, perWebhook: 3, lease: 60_000 }),
            { concurrency: "unbounded" }
          )
          for (const claimed of claims) {
            assert.isAtMost(claimed.length, 10)
            const perEndpoint = new Map<string, number>()
            for (const d of claimed) perEndpoint.set(d.webhook_id, (perEndpoint.get(d.webhook_id) ?? 0) + 1)
            assert.isAtMost(Math.max(0, ...perEndpoint.values()), 3, "perWebhook holds within each claim")
            for (const d of claimed) seen.set(d.delivery_id, (seen.get(d.delivery_id) ?? 0) + 1)
          }
          if (claims.every((claimed) => claimed.length === 0)) break
        }
        assert.deepStrictEqual(
          [...seen.entries()].filter(([, times]) => times > 1),
          [],
          "no delivery was claimed twice"
        )
        assert.deepStrictEqual([...seen.keys()].sort(), ids(deliveries).sort(), "every delivery was claimed")
      })
    )

    it.effect("record moves a delivery on (PENDING at the next time, DELIVERED, FAILED) and keeps every attempt", () =>
      Effect.gen(function* () {
        const outbox = yield* DeliveryOutbox
        const now = newWindow()
        const { user, endpoint, delivery } = fixture()
        const [alice, bob] = [user("alice"), user("bob")]
        const webhook = endpoint()
        const d = delivery(alice, webhook, now)
        const e = delivery(alice, webhook, now + 1)
        yield* outbox.enqueue([d, e])
        const lease = { ...wide, lease: 30_000 }
        assert.deepStrictEqual(ids(yield* outbox.claim(now + 1, lease)), ids([d, e]))

        const first = attemptOf(d, 1, now + 100, {
          status_code: 503,
          latency_ms: 250.5,
          error: "HTTP 503",
          outcome: "RETRY"
        })
        yield* outbox.record(first, { state: "PENDING", next_attempt_at: now + 10_000 })
        assert.deepStrictEqual(yield* getSome(d.delivery_id), {
          ...queued(d),
          attempts: 1,
          next_attempt_at: now + 10_000,
          last_error: "HTTP 503"
        })
        assert.deepStrictEqual(yield* outbox.claim(now + 9_999, lease), [], "not before its next attempt")
        const retried = yield* outbox.claim(now + 10_000, lease)
        assert.deepStrictEqual(ids(retried), ids([d]))
        assert.strictEqual(retried[0]!.attempts, 1, "the worker sees how many attempts came before")

        const second = attemptOf(d, 2, now + 10_005, {
          status_code: null,
          latency_ms: 10_000,
          error: "timed out",
          outcome: "RETRY"
        })
        yield* outbox.record(second, { state: "PENDING", next_attempt_at: now + 70_000 })
        const third = attemptOf(d, 3, now + 70_010, delivered)
        yield* outbox.record(third, deliveredStep)
        const done = yield* getSome(d.delivery_id)
        assert.deepStrictEqual([done.state, done.attempts, done.last_error], ["DELIVERED", 3, null])

        const gone = attemptOf(e, 1, now + 80_000, {
          status_code: 410,
          latency_ms: 7,
          error: "HTTP 410",
          outcome: "FAILED"
        })
        yield* outbox.record(gone, { state: "FAILED", error: "the endpoint answered 410 Gone" })
        const failed = yield* getSome(e.delivery_id)
        assert.deepStrictEqual(
          [failed.state, failed.attempts, failed.last_error],
          ["FAILED", 1, "the endpoint answered 410 Gone"]
        )
        assert.deepStrictEqual(
          yield* outbox.claim(now + 1_000_000, lease),
          [],
          "a finished delivery is never due again"
        )

        assert.deepStrictEqual(yield* outbox.attempts(alice, webhook, 10), [gone, third, second, first], "newest first")
        assert.deepStrictEqual(yield* outbox.attempts(alice, webhook, 2), [gone, third])
        assert.deepStrictEqual(yield* outbox.attempts(alice, webhook, 0), [])
        assert.deepStrictEqual(yield* outbox.attempts(bob, webhook, 10), [], "another user's endpoint: none")
        assert.deepStrictEqual(yield* outbox.attempts(alice, endpoint(), 10), [])
      })
    )

    it.effect("an attempt that outlived its lease moves nothing once another claim holds the delivery", () =>
      Effect.gen(function* () {
        const outbox = yield* DeliveryOutbox
        const now = newWindow()
        const { user, endpoint, delivery } = fixture()
        const alice = user("alice")
        const d = delivery(alice, endpoint(), now)
        yield* outbox.enqueue([d])
        const [first] = yield* outbox.claim(now, { ...wide, lease: 1_000 })
        const [second] = yield* outbox.claim(now + 1_000, { ...wide, lease: 1_000 })
        assert.notStrictEqual(second!.next_attempt_at, first!.next_attempt_at)
        // The first worker reports last, with a final failure: refused, the second still holds the delivery.
        const stale = attemptOf(d, 1, now + 10, { status_code: 410, latency_ms: 5, error: "gone", outcome: "FAILED" })
        yield* outbox.record(stale, { state: "FAILED", error: "gone" }, first!.next_attempt_at)
        const held = yield* getSome(d.delivery_id)
        assert.deepStrictEqual([held.state, held.next_attempt_at], ["PENDING", second!.next_attempt_at])
        // The holder's own report moves it.
        yield* outbox.record(attemptOf(d, 1, now + 1_010, delivered), deliveredStep, second!.next_attempt_at)
        assert.strictEqual((yield* getSome(d.delivery_id)).state, "DELIVERED")
      })
    )

    it.effect(
      "a released claim is due again at once; a release under a lease that is no longer the latest does nothing",
      () =>
        Effect.gen(function* () {
          const outbox = yield* DeliveryOutbox
          const now = newWindow()
          const { user, endpoint, delivery } = fixture()
          const d = delivery(user("alice"), endpoint(), now)
          yield* outbox.enqueue([d])
          const [first] = yield* outbox.claim(now, { ...wide, lease: 60_000 })
          assert.deepStrictEqual(yield* outbox.claim(now + 1_000, wide), [], "leased")
          yield* outbox.release(d.delivery_id, first!.next_attempt_at, now + 1_000)
          const [again] = yield* outbox.claim(now + 1_000, { ...wide, lease: 60_000 })
          assert.strictEqual(again?.delivery_id, d.delivery_id)
          // The first claim's lease is over: releasing under it leaves the second claim's lease alone.
          yield* outbox.release(d.delivery_id, first!.next_attempt_at, now + 2_000)
          assert.strictEqual((yield* getSome(d.delivery_id)).next_attempt_at, again!.next_attempt_at)
        })
    )

    it.effect("a late attempt does not move a finished delivery back, and an attempt recorded twice is kept once", () =>
      Effect.gen(function* () {
        const outbox = yield* DeliveryOutbox
        const now = newWindow()
        const { user, endpoint, delivery } = fixture()
        const alice = user("alice")
        const webhook = endpoint()
        const d = delivery(alice, webhook, now)
        yield* outbox.enqueue([d])
        yield* outbox.claim(now, { ...wide, lease: 1_000 })
        // The lease ran out mid-attempt; a second worker delivered, then the first reports a timeout.
        yield* outbox.claim(now + 1_000, { ...wide, lease: 1_000 })
        const winner = attemptOf(d, 1, now + 1_100, delivered)
        yield* outbox.record(winner, deliveredStep)
        yield* outbox.record(winner, deliveredStep)
        const late = attemptOf(d, 1, now + 5, {
          status_code: null,
          latency_ms: 5_000,
          error: "timed out",
          outcome: "RETRY"
        })
        yield* outbox.record(late, { state: "PENDING", next_attempt_at: now + 2_000 })
        const stored = yield* getSome(d.delivery_id)
        assert.deepStrictEqual([stored.state, stored.attempts, stored.last_error], ["DELIVERED", 1, null])
        assert.deepStrictEqual(yield* outbox.claim(now + 2_000, wide), [])
        assert.deepStrictEqual(
          yield* outbox.attempts(alice, webhook, 10),
          [winner, late],
          "both logged, the repeat once"
        )
      })
    )

    it.effect("requeue makes a FAILED or unknown delivery PENDING afresh, and leaves a DELIVERED or PENDING one", () =>
      Effect.gen(function* () {
        const outbox = yield* DeliveryOutbox
        const now = newWindow()
        const { user, endpoint, delivery } = fixture()
        const alice = user("alice")
        const webhook = endpoint()
        const [failed, done, pending, absent] = [
          delivery(alice, webhook, now - 40),
          delivery(alice, webhook, now - 30),
          delivery(alice, webhook, now - 20),
          delivery(alice, webhook, now - 10)
        ]
        yield* outbox.enqueue([failed, done, pending])
        yield* outbox.record(
          attemptOf(failed, 7, now, { status_code: 500, latency_ms: 3, error: "HTTP 500", outcome: "FAILED" }),
          { state: "FAILED", error: "retry budget spent; last: HTTP 500" }
        )
        yield* outbox.record(attemptOf(done, 1, now, delivered), deliveredStep)
        yield* outbox.record(
          attemptOf(pending, 1, now, { status_code: 502, latency_ms: 3, error: "HTTP 502", outcome: "RETRY" }),
          { state: "PENDING", next_attempt_at: now + 50_000 }
        )
        const [doneBefore, pendingBefore] = [yield* getSome(done.delivery_id), yield* getSome(pending.delivery_id)]

        const replayAt = now + 1_000
        const replayTrace = newTraceparent()
        for (const d of [failed, done, pending, absent]) {
          yield* outbox.requeue({ ...d, due_at: replayAt, traceparent: replayTrace })
        }
        assert.deepStrictEqual(
          yield* getSome(failed.delivery_id),
          queued({ ...failed, due_at: replayAt, traceparent: replayTrace }),
          "no attempts, no error, due (and its budget counted) from the replay, in the replay's trace"
        )
        assert.deepStrictEqual(yield* getSome(done.delivery_id), doneBefore, "a delivered one is left alone")
        assert.deepStrictEqual(yield* getSome(pending.delivery_id), pendingBefore, "a pending one too")
        assert.deepStrictEqual(
          yield* getSome(absent.delivery_id),
          queued({ ...absent, due_at: replayAt, traceparent: replayTrace })
        )
        assert.deepStrictEqual(
          ids(yield* outbox.claim(replayAt, wide)).sort(),
          ids([failed, absent]).sort(),
          "both are due at the replay's time"
        )
      })
    )

    it.effect("statusOf counts each alert's deliveries by state; an alert without deliveries is absent", () =>
      Effect.gen(function* () {
        const outbox = yield* DeliveryOutbox
        const now = newWindow()
        const { run, user, endpoint, delivery } = fixture()
        const alice = user("alice")
        const [x, y, none] = [`${run}-x`, `${run}-y`, `${run}-none`]
        const forX = Array.from({ length: 4 }, () => delivery(alice, endpoint(), now, x))
        const forY = delivery(alice, endpoint(), now, y)
        const test = delivery(alice, endpoint(), now, null)
        yield* outbox.enqueue([...forX, forY, test])
        yield* outbox.record(attemptOf(forX[0]!, 1, now, delivered), deliveredStep)
        yield* outbox.record(
          attemptOf(forX[1]!, 1, now, { status_code: 404, latency_ms: 1, error: "HTTP 404", outcome: "FAILED" }),
          { state: "FAILED", error: "HTTP 404" }
        )
        yield* outbox.record(attemptOf(forY, 1, now, delivered), deliveredStep)
        yield* outbox.record(attemptOf(test, 1, now, delivered), deliveredStep)
        const status = yield* outbox.statusOf([x, y, none, x])
        assert.deepStrictEqual(
          [...status.entries()].sort(([a], [b]) => a.localeCompare(b)),
          [
            [x, { pending: 2, delivered: 1, failed: 1 }],
            [y, { pending: 0, delivered: 1, failed: 0 }]
          ]
        )
        assert.strictEqual((yield* outbox.statusOf([])).size, 0)
      })
    )
  })
