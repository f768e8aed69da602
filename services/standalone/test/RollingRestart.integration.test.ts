import { DexMonClient } from "@dexmon/sdk"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Fiber, Ref, Schedule } from "effect"
import { ALL, mint } from "./support/Issuer.ts"
import { makeServiceProcess, type ServiceProcess } from "./support/ServiceProcess.ts"
import { makeProductionEnvironment } from "./support/Topology.ts"

const HOUR = 3_600_000
const SENSORS = 10
const LOAD_FIBERS = 4

describe("rolling restart under load", () => {
  it.live(
    "each service in turn gets SIGTERM, exits 0 within the bound and comes back; no accepted reading is lost or applied twice",
    () =>
      Effect.gen(function* () {
        const run = `roll${Date.now().toString(36)}`
        const { env, key, database } = yield* makeProductionEnvironment(run)
        const services: Record<string, ServiceProcess> = {
          "receiver A": yield* makeServiceProcess("receiver", env),
          "receiver B": yield* makeServiceProcess("receiver", env),
          "processor 1": yield* makeServiceProcess("processor", env),
          "processor 2": yield* makeServiceProcess("processor", env),
          notifier: yield* makeServiceProcess("notifier", env),
          gateway: yield* makeServiceProcess("gateway", env)
        }
        yield* Effect.all(
          Object.values(services).map((service) => service.start),
          { concurrency: "unbounded" }
        )
        const token = yield* mint(key, { sub: "rolling-user", scope: ALL, exp: 3_600 })
        const clients = yield* Effect.all(
          [services["receiver A"]!, services["receiver B"]!].map((receiver) =>
            DexMonClient.pipe(Effect.provide(DexMonClient.layer({ baseUrl: receiver.baseUrl, token })))
          )
        )
        const base = (yield* Clock.currentTimeMillis) - HOUR
        const accepted = yield* Ref.make<ReadonlyArray<number>>([])
        const next = yield* Ref.make(0)
        const running = yield* Ref.make(true)

        // The app's behaviour: post, and on any failure (a receiver restarting) post the same reading to the
        // other receiver until one answers 202. A reading counts only once accepted.
        const postUntilAccepted = (n: number) =>
          Effect.suspend(() => {
            let attempt = 0
            return Effect.suspend(() =>
              clients[attempt++ % clients.length]!.ingestion.postSensor({
                payload: {
                  sensor_id: `${run}-s${n % SENSORS}` as never,
                  timestamp: base + n * 1_000,
                  glucose_value: n % 7 === 0 ? 55 : 120
                }
              })
            ).pipe(Effect.retry({ schedule: Schedule.spaced("50 millis"), times: 600 }))
          })
        const load = Effect.gen(function* () {
          while (yield* Ref.get(running)) {
            const n = yield* Ref.getAndUpdate(next, (k) => k + 1)
            yield* postUntilAccepted(n)
            yield* Ref.update(accepted, (all) => [...all, n])
            yield* Effect.sleep("10 millis")
          }
        })
        const loadFibers = yield* Effect.all(Array.from({ length: LOAD_FIBERS }, () => Effect.forkChild(load)))

        const waitForMore = (atLeast: number) =>
          Ref.get(accepted).pipe(
            Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (all) => all.length >= atLeast })
          )
        for (const [name, service] of Object.entries(services)) {
          yield* waitForMore((yield* Ref.get(accepted)).length + 40)
          const ended = yield* service.terminate
          yield* Effect.logInfo(`${name}: SIGTERM to exit ${ended.code} in ${ended.millis} ms`)
          assert.strictEqual(
            ended.code,
            0,
            `${name} exit ${JSON.stringify(ended)}; output:\n${service.output().slice(-3000)}`
          )
          assert.isBelow(ended.millis, 15_000, `${name} shut down within DEXMON_SHUTDOWN_TIMEOUT`)
          yield* service.start
        }
        yield* waitForMore((yield* Ref.get(accepted)).length + 40)
        yield* Ref.set(running, false)
        yield* Effect.all(loadFibers.map(Fiber.join))

        const posted = [...(yield* Ref.get(accepted))].sort((a, b) => a - b)
        assert.isAtLeast(posted.length, 280)
        const expectedLow = posted.filter((n) => n % 7 === 0).length

        // Every accepted reading is stored exactly once, at version 1 with its own value.
        const rows = yield* database.sql<{ timestamp_ms: number; glucose_value: number; version: number }>`
          SELECT (extract(epoch FROM "timestamp") * 1000)::float8 AS timestamp_ms, glucose_value, version
          FROM glucose_readings ORDER BY "timestamp"`.pipe(
          Effect.repeat({
            schedule: Schedule.spaced("200 millis"),
            until: (found) => found.length >= posted.length,
            times: 600
          })
        )
        assert.deepStrictEqual(
          rows.map((row) => [Number(row.timestamp_ms), Number(row.glucose_value), Number(row.version)]),
          posted.map((n) => [base + n * 1_000, n % 7 === 0 ? 55 : 120, 1])
        )

        // Every LOW reading has exactly one alert.
        const alerts = yield* Effect.gen(function* () {
          const app = yield* DexMonClient
          const seen: Array<string> = []
          let cursor: string | undefined
          do {
            const page = yield* app.alerts.list({
              query: { from: base - HOUR, to: base + 2 * HOUR, limit: 100, cursor }
            })
            seen.push(...page.items.map((alert) => alert.alert_id))
            cursor = page.next_cursor ?? undefined
          } while (cursor !== undefined)
          return seen
        }).pipe(
          Effect.provide(DexMonClient.layer({ baseUrl: services.gateway!.baseUrl, token })),
          Effect.repeat({
            schedule: Schedule.spaced("200 millis"),
            until: (ids) => ids.length >= expectedLow,
            times: 600
          })
        )
        assert.strictEqual(alerts.length, expectedLow)
        assert.strictEqual(new Set(alerts).size, expectedLow)
      }),
    600_000
  )
})
