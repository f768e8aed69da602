import { UserId } from "@dexmon/domain"
import { assert, layer } from "@effect/vitest"
import { Effect, type Layer, Option, Result } from "effect"
import { AlertSettingsConflict, AlertSettingsStore, type StoredAlertSettings } from "../../src/index.ts"

let runCounter = 0
const newRun = () => `set${Date.now().toString(36)}${runCounter++}`

/** A settings-like document; `n` makes each one different. */
const documentOf = (n: number) =>
  JSON.stringify({ low: { enabled: true, threshold: 70 + n, repeat_minutes: null }, high: { threshold: 180 + n } })

/** Stores may re-serialise the JSON (jsonb does), so documents are compared as parsed values. */
const assertSameDocument = (actual: string, expected: string, message?: string) =>
  assert.deepStrictEqual(JSON.parse(actual), JSON.parse(expected), message)

const assertSameVersion = (actual: Option.Option<StoredAlertSettings>, expected: StoredAlertSettings) => {
  assert.isTrue(Option.isSome(actual), `version ${expected.version} is there`)
  const stored = Option.getOrThrow(actual)
  assert.deepStrictEqual(stored, expected, `version ${expected.version} is unchanged`)
}

/** The behaviour every layer of the alert-settings port must have. */
export const alertSettingsStoreContract = (name: string, settingsLayer: Layer.Layer<AlertSettingsStore, unknown>) =>
  layer(settingsLayer, { timeout: 60_000, excludeTestServices: true })(`AlertSettingsStore contract: ${name}`, (it) => {
    it.effect("a user who never put settings has none: no current, version 0, no version 1", () =>
      Effect.gen(function* () {
        const store = yield* AlertSettingsStore
        const user = UserId.make(`${newRun()}-alice`)
        assert.isTrue(Option.isNone(yield* store.current(user)))
        assert.strictEqual(yield* store.currentVersion(user), 0)
        assert.isTrue(Option.isNone(yield* store.at(user, 0)), "version 0 (the defaults) is never stored")
        assert.isTrue(Option.isNone(yield* store.at(user, 1)))
        yield* store.ping
      })
    )

    it.effect("the first put (expected 0) writes version 1, which current and at both answer", () =>
      Effect.gen(function* () {
        const store = yield* AlertSettingsStore
        const user = UserId.make(`${newRun()}-alice`)
        const written = yield* store.put(user, documentOf(1), 0)
        assert.strictEqual(written.user_id, user)
        assert.strictEqual(written.version, 1)
        assertSameDocument(written.document, documentOf(1))
        assert.isTrue(Number.isFinite(written.updated_at) && written.updated_at > 0, "updated_at is epoch ms")
        assertSameVersion(yield* store.current(user), written)
        assert.strictEqual(yield* store.currentVersion(user), 1)
        assertSameVersion(yield* store.at(user, 1), written)
        assert.isTrue(Option.isNone(yield* store.at(user, 2)))
      })
    )

    it.effect("a put on a stale or an unknown version fails with the current version and writes nothing", () =>
      Effect.gen(function* () {
        const store = yield* AlertSettingsStore
        const user = UserId.make(`${newRun()}-alice`)
        yield* store.put(user, documentOf(1), 0)
        const second = yield* store.put(user, documentOf(2), 1)
        for (const expected of [0, 1, 3, -1]) {
          const error = yield* store.put(user, documentOf(9), expected).pipe(Effect.flip)
          assert.instanceOf(error, AlertSettingsConflict, `expected ${expected}`)
          assert.deepStrictEqual(
            error._tag === "AlertSettingsConflict"
              ? [error.user_id, error.expected_version, error.current_version]
              : [],
            [user, expected, 2]
          )
        }
        assert.strictEqual(yield* store.currentVersion(user), 2)
        assertSameVersion(yield* store.current(user), second)
        assert.isTrue(Option.isNone(yield* store.at(user, 3)))
      })
    )

    it.effect("of 8 concurrent puts on one expected version exactly one is written; the others conflict", () =>
      Effect.gen(function* () {
        const store = yield* AlertSettingsStore
        const user = UserId.make(`${newRun()}-alice`)
        // Several rounds, since a round where the puts happen not to overlap proves nothing.
        for (let expected = 0; expected < 4; expected++) {
          const attempts = Array.from({ length: 8 }, (_, i) => documentOf(100 * expected + i))
          const results = yield* Effect.forEach(
            attempts,
            (document) => store.put(user, document, expected).pipe(Effect.result),
            { concurrency: "unbounded" }
          )
          const winners = results.flatMap((result, i) =>
            Result.isSuccess(result) ? [[result.success, i] as const] : []
          )
          assert.strictEqual(winners.length, 1, `exactly one put on version ${expected} is written`)
          const [winner, index] = winners[0]!
          assert.strictEqual(winner.version, expected + 1)
          assertSameDocument(winner.document, attempts[index]!)
          for (const result of results) {
            if (Result.isFailure(result)) {
              assert.strictEqual(result.failure._tag, "AlertSettingsConflict")
              assert.strictEqual(
                result.failure._tag === "AlertSettingsConflict" && result.failure.current_version,
                expected + 1
              )
            }
          }
          assert.strictEqual(yield* store.currentVersion(user), expected + 1)
          assertSameVersion(yield* store.at(user, expected + 1), winner)
          assert.isTrue(Option.isNone(yield* store.at(user, expected + 2)), "no loser was written as a later version")
        }
      })
    )

    it.effect("every older version reads back unchanged after newer puts", () =>
      Effect.gen(function* () {
        const store = yield* AlertSettingsStore
        const user = UserId.make(`${newRun()}-alice`)
        const written: Array<StoredAlertSettings> = []
        for (let n = 0; n < 5; n++) written.push(yield* store.put(user, documentOf(n), n))
        assert.deepStrictEqual(
          written.map((settings) => settings.version),
          [1, 2, 3, 4, 5]
        )
        for (const settings of written) assertSameVersion(yield* store.at(user, settings.version), settings)
        assertSameVersion(yield* store.current(user), written[4]!)
        assert.strictEqual(yield* store.currentVersion(user), 5)
      })
    )

    it.effect("users are independent: each has its own versions", () =>
      Effect.gen(function* () {
        const store = yield* AlertSettingsStore
        const run = newRun()
        const [alice, bob, carol] = [
          UserId.make(`${run}-alice`),
          UserId.make(`${run}-bob`),
          UserId.make(`${run}-carol`)
        ]
        const alice1 = yield* store.put(alice, documentOf(1), 0)
        const alice2 = yield* store.put(alice, documentOf(2), 1)
        const bob1 = yield* store.put(bob, documentOf(3), 0)
        assert.strictEqual(bob1.version, 1, "bob's first version is 1 whatever alice wrote")
        assert.deepStrictEqual(
          [yield* store.currentVersion(alice), yield* store.currentVersion(bob), yield* store.currentVersion(carol)],
          [2, 1, 0]
        )
        assertSameVersion(yield* store.at(alice, 1), alice1)
        assertSameVersion(yield* store.at(alice, 2), alice2)
        assertSameVersion(yield* store.at(bob, 1), bob1)
        assert.isTrue(Option.isNone(yield* store.at(bob, 2)))
        assert.isTrue(Option.isNone(yield* store.current(carol)))
      })
    )

    it.effect("the document round-trips as JSON: nesting, nulls, arrays, numbers and text", () =>
      Effect.gen(function* () {
        const store = yield* AlertSettingsStore
        const user = UserId.make(`${newRun()}-alice`)
        const document = JSON.stringify({
          z_last: { nested: { deeper: [1, 2.5, -3, 1e-7, 12345678901234] } },
          a_first: null,
          flags: [true, false, null],
          text: 'quotes " and \\ backslashes, émoji 🩸, newline\n',
          empty: {},
          none: []
        })
        const written = yield* store.put(user, document, 0)
        assertSameDocument(written.document, document, "as put answers it")
        assertSameDocument(Option.getOrThrow(yield* store.current(user)).document, document, "as current reads it")
        assertSameDocument(Option.getOrThrow(yield* store.at(user, 1)).document, document, "as at reads it")
      })
    )

    it.effect("a document that is not JSON is refused as a permanent failure, and nothing is written", () =>
      Effect.gen(function* () {
        const store = yield* AlertSettingsStore
        const user = UserId.make(`${newRun()}-alice`)
        const error = yield* store.put(user, "{not json", 0).pipe(Effect.flip)
        assert.strictEqual(error._tag, "AlertSettingsStoreError")
        assert.isFalse(error._tag === "AlertSettingsStoreError" && error.transient)
        assert.strictEqual(yield* store.currentVersion(user), 0)
      })
    )
  })
