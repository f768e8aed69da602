import { SensorId, UserId } from "@dexmon/domain"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { Statement } from "effect/sql"
import {
  AlertSettingsStore,
  PostgresAlertSettingsStore,
  PostgresSensorOwnership,
  SensorOwnership
} from "../src/index.ts"
import { layerServerPostgresTest } from "../src/testing/index.ts"

/** Every statement the stores run, as PostgreSQL receives it. */
const statements: Array<string> = []
const countStatements = Layer.succeed(Statement.CurrentTransformer, (statement) =>
  Effect.sync(() => {
    statements.push(statement.compile()[0])
    return statement
  })
)
const statementsMatching = (pattern: RegExp) => statements.filter((text) => pattern.test(text)).length

// Counted in the stores' own fibers and in the callers' (the tests'), wherever a statement runs.
const stores = Layer.mergeAll(PostgresSensorOwnership.layer, PostgresAlertSettingsStore.layer).pipe(
  Layer.provideMerge(countStatements),
  Layer.provideMerge(Layer.fresh(layerServerPostgresTest))
)

const run = `batch${Date.now().toString(36)}`
const users = Array.from({ length: 20 }, (_, i) => UserId.make(`${run}-u${i}`))
const sensorOf = (user: UserId) => SensorId.make(`${user}-sensor`)

// What the receiver asks per request, from many requests at once: each must cost a share of one statement.
layer(stores, { timeout: 60_000, excludeTestServices: true })("reads of concurrent requests", (it) => {
  it.effect("concurrent claims of owned sensors are decided by one read, each with its own answer", () =>
    Effect.gen(function* () {
      const ownership = yield* SensorOwnership
      for (const user of users) yield* ownership.claim(user, [sensorOf(user)])
      statements.length = 0
      // Each user posts its own sensor again; the last one also posts the first user's.
      const claims = yield* Effect.forEach(
        users,
        (user, i) =>
          ownership.claim(user, i === users.length - 1 ? [sensorOf(user), sensorOf(users[0]!)] : [sensorOf(user)]),
        { concurrency: "unbounded" }
      )
      assert.strictEqual(statementsMatching(/FROM sensor_owners/), 1, statements.join("\n"))
      assert.deepStrictEqual(
        claims.slice(0, -1),
        users.slice(0, -1).map(() => ({ foreign: [], claimed: [] }))
      )
      assert.deepStrictEqual(claims.at(-1), { foreign: [sensorOf(users[0]!)], claimed: [] })
    })
  )

  it.effect("concurrent settings-version lookups are one statement, each answered with its user's version", () =>
    Effect.gen(function* () {
      const settings = yield* AlertSettingsStore
      // Every other user has changed its settings once, the fourth ones twice.
      for (const [i, user] of users.entries()) {
        if (i % 2 === 0) yield* settings.put(user, "{}", 0)
        if (i % 4 === 0) yield* settings.put(user, "{}", 1)
      }
      statements.length = 0
      const versions = yield* Effect.forEach(users, settings.currentVersion, { concurrency: "unbounded" })
      assert.strictEqual(statementsMatching(/FROM alert_settings/), 1, statements.join("\n"))
      assert.deepStrictEqual(
        versions,
        users.map((_, i) => (i % 4 === 0 ? 2 : i % 2 === 0 ? 1 : 0))
      )
    })
  )
})
