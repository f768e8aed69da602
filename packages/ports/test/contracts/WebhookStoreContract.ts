import { randomUUID } from "node:crypto"
import { type AlertType, UserId, type Webhook, WebhookId } from "@dexmon/domain"
import { assert, layer } from "@effect/vitest"
import { Effect, type Layer, Option } from "effect"
import { WebhookStore } from "../../src/index.ts"

let runCounter = 0
const newRun = () => `hook${Date.now().toString(36)}${runCounter++}`

/** An endpoint as the gateway registers one: a random id and secret, `created_at` from the test. */
const webhookOf = (
  user: UserId,
  createdAt: number,
  kinds: ReadonlyArray<AlertType> | null = null,
  url = `https://example.test/hooks/${randomUUID()}`
): Webhook => ({
  id: WebhookId.make(randomUUID()),
  user_id: user,
  url,
  kinds,
  secret: `whsec_${randomUUID()}`,
  created_at: createdAt
})

const assertSome = <A>(actual: Option.Option<A>, expected: A, message?: string) => {
  assert.isTrue(Option.isSome(actual), message ?? "present")
  assert.deepStrictEqual(Option.getOrThrow(actual), expected, message)
}

/** The behaviour every layer of the webhook-store port must have. */
export const webhookStoreContract = (name: string, webhooksLayer: Layer.Layer<WebhookStore, unknown>) =>
  layer(webhooksLayer, { timeout: 60_000, excludeTestServices: true })(`WebhookStore contract: ${name}`, (it) => {
    it.effect("registered endpoints read back exactly: the user's list oldest first, get, byId", () =>
      Effect.gen(function* () {
        const store = yield* WebhookStore
        const run = newRun()
        const [alice, bob, carol] = [
          UserId.make(`${run}-alice`),
          UserId.make(`${run}-bob`),
          UserId.make(`${run}-carol`)
        ]
        const base = 1_760_000_000_123
        // Registered out of order: the list is ordered by created_at, not by insertion.
        const second = webhookOf(alice, base + 5_000, ["LOW", "URGENT_LOW"])
        const first = webhookOf(alice, base)
        const third = webhookOf(alice, base + 9_999)
        const bobs = webhookOf(bob, base + 1)
        for (const webhook of [second, first, bobs, third]) yield* store.register(webhook)
        assert.deepStrictEqual(yield* store.list(alice), [first, second, third])
        assert.deepStrictEqual(yield* store.list(bob), [bobs])
        assert.deepStrictEqual(yield* store.list(carol), [])
        // Several users in one read: the same lists, a user without endpoints absent.
        const several = yield* store.listFor([alice, bob, carol, alice])
        assert.deepStrictEqual(
          [...several].sort(([a], [b]) => a.localeCompare(b)),
          [
            [alice, [first, second, third]],
            [bob, [bobs]]
          ]
        )
        assert.strictEqual((yield* store.listFor([])).size, 0)
        assertSome(yield* store.get(alice, second.id), second)
        assertSome(yield* store.byId(second.id), second, "byId answers whoever owns it")
        assertSome(yield* store.byId(bobs.id), bobs)
        assert.isTrue(Option.isNone(yield* store.get(bob, second.id)), "another user's id: none")
        assert.isTrue(Option.isNone(yield* store.get(alice, bobs.id)), "another user's id: none")
        const unknown = WebhookId.make(randomUUID())
        assert.isTrue(Option.isNone(yield* store.get(alice, unknown)))
        assert.isTrue(Option.isNone(yield* store.byId(unknown)))
        yield* store.ping
      })
    )

    it.effect("kinds round-trip: null (every kind), none at all, and a list in its order", () =>
      Effect.gen(function* () {
        const store = yield* WebhookStore
        const user = UserId.make(`${newRun()}-alice`)
        const every = webhookOf(user, 1_000, null)
        const none = webhookOf(user, 2_000, [])
        const some = webhookOf(user, 3_000, ["NO_DATA", "HIGH", "FALLING_FAST"])
        for (const webhook of [every, none, some]) yield* store.register(webhook)
        assertSome(yield* store.get(user, every.id), every)
        assertSome(yield* store.get(user, none.id), none)
        assertSome(yield* store.get(user, some.id), some)
        assert.deepStrictEqual(
          (yield* store.list(user)).map((webhook) => webhook.kinds),
          [null, [], ["NO_DATA", "HIGH", "FALLING_FAST"]]
        )
      })
    )

    it.effect("a url and secret of any text round-trip unchanged", () =>
      Effect.gen(function* () {
        const store = yield* WebhookStore
        const user = UserId.make(`${newRun()}-alice`)
        const webhook = {
          ...webhookOf(user, 1_700_000_000_001, ["LOW"], "https://例え.test:8443/a%20b?x=1&y='\"#frag"),
          secret: "s3cr3t with spaces, quotes ' \" and émoji 🩸"
        }
        yield* store.register(webhook)
        assertSome(yield* store.byId(webhook.id), webhook)
      })
    )

    it.effect("registering an id twice fails for good and leaves the first registration as it was", () =>
      Effect.gen(function* () {
        const store = yield* WebhookStore
        const run = newRun()
        const alice = UserId.make(`${run}-alice`)
        const bob = UserId.make(`${run}-bob`)
        const webhook = webhookOf(alice, 1_000)
        yield* store.register(webhook)
        const error = yield* store.register({ ...webhookOf(bob, 2_000), id: webhook.id }).pipe(Effect.flip)
        assert.strictEqual(error._tag, "WebhookStoreError")
        assert.isFalse(error.transient, "trying again cannot succeed")
        assertSome(yield* store.byId(webhook.id), webhook)
        assert.deepStrictEqual(yield* store.list(bob), [])
      })
    )

    it.effect("remove deletes only the caller's endpoint: another user's or an unknown id answers false", () =>
      Effect.gen(function* () {
        const store = yield* WebhookStore
        const run = newRun()
        const alice = UserId.make(`${run}-alice`)
        const bob = UserId.make(`${run}-bob`)
        const kept = webhookOf(alice, 1_000)
        const removed = webhookOf(alice, 2_000)
        yield* store.register(kept)
        yield* store.register(removed)
        assert.isFalse(yield* store.remove(bob, removed.id), "bob cannot remove alice's endpoint")
        assertSome(yield* store.get(alice, removed.id), removed, "still there after bob's attempt")
        assert.isFalse(yield* store.remove(alice, WebhookId.make(randomUUID())))
        assert.isTrue(yield* store.remove(alice, removed.id))
        assert.isTrue(Option.isNone(yield* store.get(alice, removed.id)))
        assert.isTrue(Option.isNone(yield* store.byId(removed.id)), "the deliverer no longer finds it")
        assert.deepStrictEqual(yield* store.list(alice), [kept])
        assert.isFalse(yield* store.remove(alice, removed.id), "removing again: false")
      })
    )

    it.effect("rotateSecret replaces only the secret of the caller's endpoint and answers it as it now is", () =>
      Effect.gen(function* () {
        const store = yield* WebhookStore
        const run = newRun()
        const alice = UserId.make(`${run}-alice`)
        const bob = UserId.make(`${run}-bob`)
        const webhook = webhookOf(alice, 1_000, ["HIGH"])
        const other = webhookOf(alice, 2_000)
        yield* store.register(webhook)
        yield* store.register(other)
        assert.isTrue(Option.isNone(yield* store.rotateSecret(bob, webhook.id, "bobs-secret")), "another user's: none")
        assertSome(yield* store.byId(webhook.id), webhook, "and unchanged")
        assert.isTrue(Option.isNone(yield* store.rotateSecret(alice, WebhookId.make(randomUUID()), "x")))
        const rotated = { ...webhook, secret: "whsec_rotated" }
        assertSome(yield* store.rotateSecret(alice, webhook.id, "whsec_rotated"), rotated)
        assertSome(yield* store.get(alice, webhook.id), rotated)
        assertSome(yield* store.byId(webhook.id), rotated)
        assert.deepStrictEqual(yield* store.list(alice), [rotated, other], "the other endpoint keeps its secret")
      })
    )
  })
