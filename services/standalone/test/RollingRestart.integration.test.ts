import { deriveAlertId } from "@dexmon/domain"
import { DexMonClient } from "@dexmon/sdk"
import { ALL, eventually, makeServiceProcess, mint, type ServiceProcess } from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Fiber, Ref } from "effect"
import { makeProductionEnvironment } from "./support/Topology.ts"

const HOUR = 3_600_000
const SENSORS = 10
const LOAD_FIBERS = 4

/** Every seventh reading is an urgent low (55); the others are in range (120). */
const isLow = (n: number) => n % 7 === 0
const glucoseOf = (n: number) => (isLow(n) ? 55 : 120)

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
        // 100 ms apart from an hour ago: however many readings the run posts, every one is more than 15 minutes
        // old when it reaches the log (late: its episode is BACKFILLED) and none is in the future.
        const timestampOf = (n: number) => base + n * 100
        // A low reading on a sensor of its own is one URGENT_LOW episode whatever order the load fibers' posts
        // land in (on a shared sensor, a low that lands after a newer reading opens nothing), so each accepted
        // low reading has exactly one alert, with an id known in advance.
        const sensorOf = (n: number) => (isLow(n) ? `${run}-low${n}` : `${run}-s${n % SENSORS}`)
        const accepted = yield* Ref.make<ReadonlyArray<number>>([])
        const next = yield* Ref.make(0)
        const running = yield* Ref.make(true)

        // The app's behaviour: post, and on any failure (a receiver restarting) post the same reading to the
        // other receiver until one answers 202. A reading counts only once accepted.
        const postUntilAccepted = (n: number) =>
          Effect.suspend(() => {
            let attempt = 0
            const post = Effect.suspend(() =>
              clients[attempt++ % clients.length]!.ingestion.postSensor({
                payload: { sensor_id: sensorOf(n) as never, timestamp: timestampOf(n), glucose_value: glucoseOf(n) }
              })
            )
            return eventually(post, () => true, {
              what: `reading ${n} accepted by a receiver`,
              every: "50 millis",
              times: 600,
              retry: () => true
            })
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

        // Each post is retried for up to 30 s (above), so 40 more accepted within two minutes is generous.
        const waitForMore = (atLeast: number) =>
          eventually(Ref.get(accepted), (all) => all.length >= atLeast, {
            what: `${atLeast} readings accepted`,
            every: "50 millis",
            times: 2_400
          })
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
        const expectedAlerts = posted
          .filter(isLow)
          .map((n) => deriveAlertId(sensorOf(n), timestampOf(n), "URGENT_LOW"))
          .sort()

        // Every accepted reading is stored exactly once, at version 1 with its own value.
        const rows = yield* eventually(
          database.sql<{ timestamp_ms: number; glucose_value: number; version: number }>`
            SELECT (extract(epoch FROM "timestamp") * 1000)::float8 AS timestamp_ms, glucose_value, version
            FROM glucose_readings ORDER BY "timestamp"`,
          (found) => found.length >= posted.length,
          { what: `the ${posted.length} accepted readings stored`, every: "200 millis", times: 600 }
        )
        assert.deepStrictEqual(
          rows.map((row) => [Number(row.timestamp_ms), Number(row.glucose_value), Number(row.version)]),
          posted.map((n) => [timestampOf(n), glucoseOf(n), 1])
        )

        // Every accepted low reading has exactly one alert: its own URGENT_LOW episode, late, so BACKFILLED.
        const listAlerts = Effect.gen(function* () {
          const app = yield* DexMonClient
          const seen: Array<string> = []
          let cursor: string | undefined
          do {
            const page = yield* app.alerts.list({
              query: { from: base - HOUR, to: base + 2 * HOUR, limit: 100, cursor }
            })
            seen.push(...page.items.map((alert) => `${alert.alert_id} ${alert.alert_type} ${alert.status}`))
            cursor = page.next_cursor ?? undefined
          } while (cursor !== undefined)
          return seen
        }).pipe(Effect.provide(DexMonClient.layer({ baseUrl: services.gateway!.baseUrl, token })))
        const alerts = yield* eventually(listAlerts, (seen) => seen.length >= expectedAlerts.length, {
          what: `the ${expectedAlerts.length} URGENT_LOW episodes listed by the gateway`,
          every: "200 millis",
          times: 600
        })
        assert.deepStrictEqual(
          [...alerts].sort(),
          expectedAlerts.map((id) => `${id} URGENT_LOW BACKFILLED`)
        )
      }),
    600_000
  )
})
