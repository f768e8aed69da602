import type { AlertSettings } from "@dexmon/alerting"
import { type Alert, type AlertNotification, decodeAlertNotification, SensorId } from "@dexmon/domain"
import { DexMonClient } from "@dexmon/sdk"
import {
  ALL,
  eventually,
  makeDexMonProcessWith,
  makeServiceProcess,
  mint,
  readTopicWithKcat,
  requiredServer
} from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Layer } from "effect"
import { makeProductionEnvironment } from "./support/Topology.ts"

const MINUTE = 60_000
const SECOND = 1_000

/** The notifier's clock every second and a no-data silence of 20 s, so silence and repeats happen in test time. */
const fastClock = { DEXMON_ALERT_TICK_EVERY: "1s", DEXMON_ALERT_NO_DATA_AFTER: "20s" }

/**
 * One deployment under test, whatever its topology: an SDK client per user on
 * the receiver and on the gateway, the notifier's process to kill with
 * SIGKILL and start again, and, on Kafka, `glucose.alerts` read with kcat.
 */
interface Deployment {
  readonly receiver: (user: string) => Layer.Layer<DexMonClient>
  readonly gateway: (user: string) => Layer.Layer<DexMonClient>
  /** Kills the notifier with SIGKILL; `restart` starts it again and waits until it is ready. */
  readonly killNotifier: Effect.Effect<void>
  readonly restartNotifier: Effect.Effect<void>
  /** Whether the receiver still answers while the notifier is down (it does when they are separate processes). */
  readonly receiverOutlivesNotifier: boolean
  readonly notifications?: (sensor: string, count: number) => Effect.Effect<ReadonlyArray<AlertNotification>>
}

const kinds = (alerts: ReadonlyArray<Alert>) => alerts.map((a) => `${a.alert_type} ${a.status}`).sort()

/**
 * Everything the issue asks of the person's controls, end to end: settings
 * written through the SDK change what the next reading raises; acknowledge and
 * snooze show on the alerts (and in the notifications on Kafka); a notifier
 * killed between an acknowledgement and the next reading loses neither; a
 * stopped sensor raises no `NO_DATA`.
 */
const controlsEndToEnd = (deployment: Deployment, run: string) =>
  Effect.gen(function* () {
    const now = yield* Clock.currentTimeMillis
    // Live readings stamped with the clock, each after the one before, so a silence starts only when posting stops.
    let last = 0
    const at = Effect.map(Clock.currentTimeMillis, (time) => {
      last = Math.max(time, last + 1)
      return last
    })
    const userA = `${run}-a`
    const userB = `${run}-b`
    const sensor = (name: string) => SensorId.make(`${run}-${name}`)
    const post = (user: string, name: string, value: number) =>
      Effect.gen(function* () {
        const app = yield* DexMonClient
        yield* app.ingestion.postSensor({
          payload: { sensor_id: sensor(name), timestamp: yield* at, glucose_value: value }
        })
      }).pipe(Effect.provide(deployment.receiver(user)))
    const asUser =
      (user: string) =>
      <A, E>(effect: Effect.Effect<A, E, DexMonClient>) =>
        Effect.provide(effect, deployment.gateway(user))
    const alertsOf = (user: string, name: string) =>
      asUser(user)(
        Effect.gen(function* () {
          const app = yield* DexMonClient
          const page = yield* app.alerts.list({ query: { from: now - 60 * MINUTE, to: now + 60 * MINUTE } })
          return page.items.filter((a) => a.sensor_id === sensor(name))
        })
      )
    const until = (user: string, name: string, done: (alerts: ReadonlyArray<Alert>) => boolean) =>
      eventually(alertsOf(user, name), done, { times: 900 })

    // Before any settings: 75 raises nothing (LOW is below 70); the 50 after it shows the 75 was decided.
    // (The deployment's 20-second silence may end that urgent low before it is read: only its kinds count.)
    yield* post(userA, "before", 75)
    yield* post(userA, "before", 50)
    const before = yield* until(userA, "before", (a) => a.some((x) => x.alert_type === "URGENT_LOW"))
    assert.isFalse(before.some((a) => a.alert_type === "LOW"))

    // The settings, through the SDK: LOW below 80, no HIGH, no prediction, no urgent-low repeats.
    const written = yield* asUser(userA)(
      Effect.gen(function* () {
        const app = yield* DexMonClient
        const current = yield* app.alertSettings.get()
        const settings: AlertSettings = {
          ...current.body,
          low: { ...current.body.low, threshold: 80 },
          high: { ...current.body.high, enabled: false },
          urgent_low_soon: { ...current.body.urgent_low_soon, enabled: false },
          urgent_low: { ...current.body.urgent_low, repeat_minutes: null }
        }
        const put = yield* app.alertSettings.put({ payload: settings, headers: { "if-match": current.headers.etag } })
        assert.notStrictEqual(put.headers.etag, current.headers.etag)
        assert.deepStrictEqual(yield* app.alertSettings.get(), put)
        return put.body
      })
    )
    assert.strictEqual(written.low.threshold, 80)

    // The next readings follow them: 75 is a LOW now, and 300 no HIGH (the 50 after it shows it was decided).
    yield* post(userA, "after", 75)
    const [low] = yield* until(userA, "after", (a) => a.length === 1)
    assert.deepStrictEqual([low!.alert_type, low!.status, low!.notification_count], ["LOW", "ACTIVE", 1])
    yield* post(userA, "no-high", 300)
    yield* post(userA, "no-high", 50)
    assert.deepStrictEqual(kinds(yield* until(userA, "no-high", (a) => a.length > 0)), ["URGENT_LOW ACTIVE"])

    // Acknowledge: shown with who and when; the all clear that follows carries it.
    yield* asUser(userA)(
      Effect.gen(function* () {
        const app = yield* DexMonClient
        const accepted = yield* app.alertControls.acknowledge({ params: { alert_id: low!.alert_id } })
        assert.isString(accepted.action_id)
      })
    )
    const acknowledged = yield* until(userA, "after", (a) => a[0]?.acknowledged_by === userA)
    assert.isNotNull(acknowledged[0]!.acknowledged_at)
    yield* post(userA, "after", 100)
    yield* post(userA, "after", 105)
    const ended = yield* until(userA, "after", (a) => a[0]?.status === "RESOLVED")
    assert.deepStrictEqual([ended[0]!.notification_count, ended[0]!.acknowledged_by], [2, userA])

    // Snooze LOW for an hour from the ended episode: the next LOW episode is recorded, not told.
    const snoozedAt = yield* Clock.currentTimeMillis
    yield* asUser(userA)(
      Effect.gen(function* () {
        const app = yield* DexMonClient
        yield* app.alertControls.snooze({ params: { alert_id: low!.alert_id }, payload: { minutes: 60 } })
      })
    )
    yield* post(userA, "after", 72)
    yield* post(userA, "after", 50)
    const afterSnooze = yield* until(userA, "after", (a) => a.some((x) => x.alert_type === "URGENT_LOW"))
    const secondLow = afterSnooze.find((a) => a.alert_type === "LOW" && a.alert_id !== low!.alert_id)!
    assert.deepStrictEqual([secondLow.notification_count, secondLow.silenced_by], [0, "SNOOZED"])
    assert.isTrue(secondLow.snoozed_until! >= snoozedAt + 60 * MINUTE - 5 * SECOND)
    assert.isTrue(secondLow.snoozed_until! <= (yield* Clock.currentTimeMillis) + 60 * MINUTE)
    const urgent = afterSnooze.find((a) => a.alert_type === "URGENT_LOW")!
    assert.strictEqual(urgent.notification_count, 1, "a snooze never silences a new urgent low")

    if (deployment.notifications !== undefined) {
      // What was told, as an independent Kafka client reads glucose.alerts: the LOW, its all clear (with the
      // acknowledgement), the urgent low; nothing for the snoozed LOW. Each decision once by its key.
      const told = yield* deployment.notifications(sensor("after"), 3)
      const byKey = new Map(told.map((n) => [n.notification_id, n]))
      assert.deepStrictEqual(
        [...byKey.values()].map((n) => [n.alert_id, n.sequence, n.type]),
        [
          [low!.alert_id, 1, "alert"],
          [low!.alert_id, 2, "all_clear"],
          [urgent.alert_id, 1, "alert"]
        ]
      )
      const allClear = byKey.get(`${low!.alert_id}/all-clear`)!
      assert.deepStrictEqual(
        [allClear.alert.acknowledged_by, allClear.alert.acknowledged_at],
        [userA, acknowledged[0]!.acknowledged_at]
      )
      assert.isFalse(told.some((n) => n.alert_id === secondLow.alert_id))
    }

    // The notifier killed with SIGKILL right after an acknowledgement was accepted, before the next reading.
    yield* post(userA, "crash", 65)
    const [crashLow] = yield* until(userA, "crash", (a) => a.length === 1)
    yield* asUser(userA)(
      Effect.gen(function* () {
        const app = yield* DexMonClient
        yield* app.alertControls.acknowledge({ params: { alert_id: crashLow!.alert_id } })
      })
    )
    yield* deployment.killNotifier
    if (deployment.receiverOutlivesNotifier) {
      yield* post(userA, "crash", 66)
      yield* deployment.restartNotifier
    } else {
      yield* deployment.restartNotifier
      yield* post(userA, "crash", 66)
    }
    const afterCrash = yield* until(userA, "crash", (a) => a[0]?.last_value === 66 && a[0].acknowledged_at !== null)
    assert.deepStrictEqual(
      afterCrash.map((a): Array<unknown> => [a.alert_id, a.status, a.acknowledged_by, a.notification_count]),
      [[crashLow!.alert_id, "ACTIVE", userA, 1]]
    )
    if (deployment.notifications !== undefined) {
      const told = yield* deployment.notifications(sensor("crash"), 1)
      assert.deepStrictEqual([...new Set(told.map((n) => n.notification_id))], [`${crashLow!.alert_id}/alert`])
    }

    // A stopped sensor raises no NO_DATA: user B (the deployment's rules, silence after 20 s) stops one of two.
    yield* post(userB, "stopped", 120)
    yield* post(userB, "watched", 120)
    yield* asUser(userB)(
      Effect.gen(function* () {
        const app = yield* DexMonClient
        yield* app.alertControls.stopSensor({ params: { sensor_id: sensor("stopped") } })
      })
    )
    // The watched sensor's silence is news; when it is, the stopped one has been as silent, for as long.
    assert.deepStrictEqual(kinds(yield* until(userB, "watched", (a) => a.length > 0)), ["NO_DATA ACTIVE"])
    // Its next reading starts its new session: had its silence counted, the reading would record a NO_DATA.
    yield* post(userB, "stopped", 50)
    assert.deepStrictEqual(kinds(yield* until(userB, "stopped", (a) => a.length > 0)), ["URGENT_LOW ACTIVE"])
  })

describe("the person's controls end to end", () => {
  it.live(
    "Kafka, Cassandra and PostgreSQL, each service its own process: settings, acknowledge, snooze, a SIGKILL, a sensor stop",
    () =>
      Effect.gen(function* () {
        const run = `ctl${Date.now().toString(36)}`
        const { env, key } = yield* makeProductionEnvironment(run)
        const serviceEnv = { ...env, ...fastClock }
        const receiver = yield* makeServiceProcess("receiver", serviceEnv)
        const gateway = yield* makeServiceProcess("gateway", serviceEnv)
        const notifier = yield* makeServiceProcess("notifier", serviceEnv)
        yield* Effect.all([receiver.start, gateway.start, notifier.start], { concurrency: "unbounded" })
        const tokens = new Map<string, string>()
        const client = (baseUrl: string) => (user: string) =>
          Layer.unwrap(
            Effect.gen(function* () {
              let token = tokens.get(user)
              if (token === undefined) {
                token = yield* mint(key, { sub: user, scope: ALL })
                tokens.set(user, token)
              }
              return DexMonClient.layer({ baseUrl, token })
            })
          )
        yield* controlsEndToEnd(
          {
            receiver: client(receiver.baseUrl),
            gateway: client(gateway.baseUrl),
            killNotifier: notifier.kill9,
            restartNotifier: notifier.start,
            receiverOutlivesNotifier: true,
            notifications: (sensor, count) =>
              readTopicWithKcat({
                brokers: requiredServer("KAFKA_BROKERS"),
                topic: `${run}.glucose.alerts`,
                key: sensor,
                count
              }).pipe(
                Effect.flatMap((records) => Effect.forEach(records, (record) => decodeAlertNotification(record.value))),
                Effect.orDie
              )
          },
          run
        )
      }),
    300_000
  )

  it.live(
    "pnpm start on its embedded stores: settings, acknowledge, snooze, a SIGKILL, a sensor stop",
    () =>
      Effect.gen(function* () {
        const run = `ctle${Date.now().toString(36)}`
        const dexmon = yield* makeDexMonProcessWith({ SECURITY_DISABLED: "true", ...fastClock })
        yield* dexmon.start
        const client = (user: string) => DexMonClient.layer({ baseUrl: dexmon.baseUrl, userId: user })
        yield* controlsEndToEnd(
          {
            receiver: client,
            gateway: client,
            killNotifier: dexmon.kill9,
            restartNotifier: dexmon.start,
            receiverOutlivesNotifier: false
          },
          run
        )
      }),
    300_000
  )
})
