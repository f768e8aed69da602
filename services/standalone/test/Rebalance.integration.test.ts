import { defaultAlertRules } from "@dexmon/alerting"
import { AlertClockEvent, decodeEventsTopicBytes, GlucoseEvent } from "@dexmon/domain"
import { type ConsumerRecord, EventLog, KafkaEventLog, Topics } from "@dexmon/ports"
import { requiredServer } from "@dexmon/ports/testing"
import { DexMonClient } from "@dexmon/sdk"
import { ALL, eventually, makeServiceProcess, mint } from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { Clock, ConfigProvider, Context, Effect, Fiber, Layer, Schedule, Stream } from "effect"
import { Kafka, logLevel } from "kafkajs"
import {
  alertsWithPython,
  bySensorInLogOrder,
  expectedAlerts,
  expectedReadings,
  type HistoryRow,
  type LoggedEvent,
  type ReadingRow,
  scriptedLogOrder,
  scriptUser,
  type UserScript
} from "./support/RebalanceScript.ts"
import { makeProductionEnvironment } from "./support/Topology.ts"

const USERS = 18
/** The most users the load may take while the faults go on (each user adds a few hundred events). */
const MAX_USERS = USERS * 3
const SENSORS_PER_USER = 5
/** The processors' backlog under which the next user starts posting. */
const LOW_WATER = 600
/**
 * Small batches: many per partition, so a member joining or leaving finds some in flight. The notifier
 * does more per batch (states, episodes, notifications): its batches are larger, to keep the run short.
 */
const PROCESSOR_BATCH_SIZE = "3"
const NOTIFIER_BATCH_SIZE = "50"

const sum = (offsets: ReadonlyMap<number, number>) => [...offsets.values()].reduce((a, b) => a + b, 0)

describe("a consumer rebalance while batches are in flight", () => {
  it.live(
    "three processors and two notifiers join and leave (SIGTERM, SIGKILL) under load: the readings and alerts the log decides, every alert and notification exactly once",
    () =>
      Effect.gen(function* () {
        const run = `rebal${Date.now().toString(36)}`
        const production = yield* makeProductionEnvironment(run)
        const env: Record<string, string | undefined> = {
          ...production.env,
          DEXMON_PROCESSOR_BATCH_SIZE: PROCESSOR_BATCH_SIZE,
          DEXMON_NOTIFIER_BATCH_SIZE: NOTIFIER_BATCH_SIZE,
          // The clock runs as in production, often: it must decide nothing here (no urgent low stays open, no
          // sensor is silent for twenty minutes), which the expected outcome checks.
          DEXMON_ALERT_TICK_EVERY: "1s"
        }
        const processorGroup = env.DEXMON_PROCESSOR_GROUP!
        const notifierGroup = env.DEXMON_NOTIFIER_GROUP!
        const log = Context.get(
          yield* Layer.build(
            KafkaEventLog.layer.pipe(
              Layer.provide(Layer.succeed(Topics, Topics.make(8, `${run}.`))),
              Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord(env as Record<string, string>)))
            )
          ),
          EventLog
        )
        const { names } = Topics.make(8, `${run}.`)
        const admin = new Kafka({
          clientId: `${run}-admin`,
          brokers: requiredServer("KAFKA_BROKERS").split(","),
          logLevel: logLevel.NOTHING
        }).admin()
        yield* Effect.acquireRelease(
          Effect.promise(() => admin.connect()),
          () => Effect.promise(() => admin.disconnect())
        )

        const receiver = yield* makeServiceProcess("receiver", env)
        const processors = [
          yield* makeServiceProcess("processor", env),
          yield* makeServiceProcess("processor", env),
          yield* makeServiceProcess("processor", env)
        ] as const
        const notifiers = [
          yield* makeServiceProcess("notifier", env),
          yield* makeServiceProcess("notifier", env)
        ] as const

        /** Records appended to `glucose.events`, and how many of them a group has committed. */
        const ended = Effect.map(log.endOffsets(names.events), sum)
        const committed = (group: string) =>
          log
            .committedOffsets(group, names.events)
            .pipe(
              Effect.retry({ while: (error) => error.transient, schedule: Schedule.spaced("200 millis"), times: 150 }),
              Effect.map(sum)
            )
        const processorBacklog = Effect.zipWith(ended, committed(processorGroup), (end, done) => end - done)
        const untilCommitted = (group: string, atLeast: number) =>
          eventually(committed(group), (n) => n >= atLeast, { every: "100 millis", times: 1_800 })
        /** The group's members as the coordinator sees them, once it has settled (a real signal of a join or leave). */
        const members = (group: string) =>
          Effect.tryPromise(() => admin.describeGroups([group])).pipe(
            Effect.map(({ groups }) => ({ state: groups[0]?.state, members: groups[0]?.members.length ?? 0 })),
            // A coordinator busy with a rebalance may refuse to answer: asked again at the next poll.
            Effect.orElseSucceed(() => ({ state: "Unknown", members: 0 }))
          )
        const untilMembers = (group: string, count: number) =>
          eventually(members(group), (g) => g.state === "Stable" && g.members === count, {
            every: "200 millis",
            times: 600
          })

        // The faults, each with the backlog both groups had at that moment. A fault with nothing in flight would
        // prove nothing, so each one waits until the group it hits has records appended but not committed: the
        // load is paced by the processors' backlog, and the notifiers (larger batches) can drain theirs while no
        // user posts, which a fixed wait would sometimes hit (CI, stop 32: a notifier stopped with backlog 0).
        const faults: Array<{ fault: string; processorBacklog: number; notifierBacklog: number }> = []
        const backlogs = Effect.gen(function* () {
          const end = yield* ended
          return {
            processorBacklog: end - (yield* committed(processorGroup)),
            notifierBacklog: end - (yield* committed(notifierGroup))
          }
        })
        const fault = <A, E, R>(name: string, group: "processor" | "notifier", act: Effect.Effect<A, E, R>) =>
          Effect.gen(function* () {
            const inFlight = yield* eventually(
              backlogs,
              (b) => (group === "processor" ? b.processorBacklog : b.notifierBacklog) > 0,
              { what: `${name}: records in flight for the ${group}s`, every: "20 millis", times: 6_000 }
            )
            faults.push({ fault: name, ...inFlight })
            yield* Effect.logInfo(
              `${name}: backlog processors ${inFlight.processorBacklog}, notifiers ${inFlight.notifierBacklog}`
            )
            return yield* act
          })

        // The load: one user after another, each posting ten minutes of their five sensors that end as they
        // post (so every reading is live), up to four users at a time, the next one only once the processors'
        // backlog is under LOW_WATER: the processors never run dry while the faults happen, nor far behind.
        // A user's requests take seconds, far less than the five minutes after which an urgent low's repeat
        // falls due: a notifier's clock tick between two of them (on a partition it has caught up on) has
        // nothing to decide, so the outcome is the log's alone.
        const scripts: Array<UserScript> = []
        const postingTimes: Array<number> = []
        const postUser = (u: number) =>
          Effect.gen(function* () {
            yield* eventually(processorBacklog, (backlog) => backlog < LOW_WATER, { every: "100 millis", times: 3_000 })
            const postedAt = yield* Clock.currentTimeMillis
            const script = scriptUser({ run, user: u, sensorsPerUser: SENSORS_PER_USER, postedAt })
            scripts.push(script)
            const token = yield* mint(production.key, { sub: script.user, scope: ALL, exp: 3_600 })
            const app = yield* DexMonClient.pipe(
              Effect.provide(DexMonClient.layer({ baseUrl: receiver.baseUrl, token }))
            )
            for (const post of script.posts) {
              const accepted =
                post.source === "SENSOR"
                  ? yield* app.ingestion.postSensor({ payload: { readings: post.readings } })
                  : yield* app.ingestion.postManual({ payload: post.readings[0]! })
              assert.strictEqual(accepted.accepted, post.readings.length)
            }
            const took = (yield* Clock.currentTimeMillis) - postedAt
            postingTimes.push(took)
            assert.isBelow(took, 60_000, `user ${u} posted within a minute`)
          })

        const consuming = yield* Clock.currentTimeMillis
        yield* Effect.all([receiver.start, processors[0].start, notifiers[0].start], { concurrency: "unbounded" })
        // At least USERS users, and as many more as the faults take: a machine busy with other suites makes the
        // faults (session timeouts, rebalances) slower, and a fixed load could end before them. Users that start
        // once the faults are over give the load its tail after them; MAX_USERS bounds a fault that never ends.
        let faultsOver = false
        let usersAfterFaults = 0
        const postWhileFaulting = (u: number) =>
          Effect.suspend(() => {
            if (u >= USERS && faultsOver && usersAfterFaults >= 4) return Effect.void
            if (faultsOver) usersAfterFaults += 1
            return postUser(u)
          })
        const load = yield* Effect.forkChild(
          Effect.forEach(
            Array.from({ length: MAX_USERS }, (_, u) => u),
            postWhileFaulting,
            { concurrency: 4, discard: true }
          )
        )
        // Each fault waits for the group to commit some more of the load after the previous one settled.
        const further = (group: string, records: number) =>
          Effect.flatMap(committed(group), (now) => untilCommitted(group, now + records))
        const processorFaults = Effect.gen(function* () {
          yield* further(processorGroup, 200)
          yield* fault("processor 2 joins", "processor", processors[1].start)
          yield* untilMembers(processorGroup, 2)
          yield* fault("processor 3 joins", "processor", processors[2].start)
          yield* untilMembers(processorGroup, 3)
          yield* further(processorGroup, 100)
          // No finalizer runs: its batches are neither finished nor committed, and the group only notices when
          // its session times out; until then its partitions wait, then the others take them over from their
          // last commits.
          yield* fault("processor 2 gets SIGKILL", "processor", processors[1].kill9)
          yield* further(processorGroup, 100)
          // While the group still counts the killed member: the rebalance waits for it to time out.
          yield* fault("processor 1 gets SIGTERM", "processor", processors[0].stop)
          yield* untilMembers(processorGroup, 1)
        })
        const notifierFaults = Effect.gen(function* () {
          yield* further(notifierGroup, 200)
          yield* fault("notifier 2 joins", "notifier", notifiers[1].start)
          yield* untilMembers(notifierGroup, 2)
          yield* further(notifierGroup, 300)
          yield* fault("notifier 2 gets SIGTERM", "notifier", notifiers[1].stop)
          yield* untilMembers(notifierGroup, 1)
        })
        yield* Effect.all([processorFaults, notifierFaults], { concurrency: "unbounded" })
        faultsOver = true
        const faultsDone = yield* ended
        yield* Fiber.join(load)
        const total = yield* ended
        yield* untilCommitted(processorGroup, total)
        yield* untilCommitted(notifierGroup, total)
        yield* Effect.logInfo(
          `${total} records (${faultsDone} when the faults were over) consumed by both groups in ${(yield* Clock.currentTimeMillis) - consuming} ms; users posted in ${Math.min(...postingTimes)}..${Math.max(...postingTimes)} ms`
        )
        assert.isBelow(faultsDone, total, "the load outlasts the faults")
        assert.strictEqual(faults.length, 6, `every fault happened: ${JSON.stringify(faults)}`)

        // Nothing was dead-lettered: every record was applied by the processors and decided by the notifiers.
        assert.strictEqual(sum(yield* log.endOffsets(names.eventsDlq)), 0)
        assert.strictEqual(sum(yield* log.endOffsets(names.alertsDlq)), 0)

        // The log as it is: every event with its partition, offset and log time. The expected outcome is the
        // domain's pure functions over exactly this, which is the script as the receiver appended it.
        const logged: Array<LoggedEvent> = []
        for (const record of yield* readAll(log, names.events)) {
          const event = yield* Effect.orDie(decodeEventsTopicBytes(record.value))
          // A notifier's clock tick (a sensor that fell due while faults slowed the posts): the comparison below
          // checks that no tick had anything to decide.
          if (event instanceof AlertClockEvent) continue
          if (!(event instanceof GlucoseEvent)) return yield* Effect.die(new Error("only readings were posted"))
          logged.push({ record, event })
        }
        assert.strictEqual(logged.length, total)
        const bySensor = bySensorInLogOrder(logged)
        const scripted = scriptedLogOrder(scripts)
        assert.strictEqual(bySensor.size, scripts.length * SENSORS_PER_USER)
        for (const [sensor, events] of bySensor) {
          assert.deepStrictEqual(
            events.map(({ event }): readonly [number, number, string, string] => [
              event.timestamp,
              event.glucose_value,
              event.source,
              event.user_id
            ]),
            scripted.get(sensor),
            `the log of ${sensor} is what was posted, in order`
          )
        }

        // Readings: every key with its value, source, version, owner and the event that wrote it; and every
        // superseded value in the history, once.
        const readings = expectedReadings(bySensor)
        const storedRows = yield* production.database.sql<{
          sensor_id: string
          ts: number
          user_id: string
          glucose_value: number
          source: string
          version: number
          event_id: string
        }>`SELECT sensor_id, (extract(epoch FROM "timestamp") * 1000)::float8 AS ts, user_id, glucose_value, source,
            version, event_id::text AS event_id
          FROM glucose_readings ORDER BY sensor_id, "timestamp"`
        const stored: Array<ReadingRow> = storedRows.map((r) => [
          r.sensor_id,
          Number(r.ts),
          r.user_id,
          Number(r.glucose_value),
          r.source,
          Number(r.version),
          r.event_id
        ])
        const historyRows = yield* production.database.sql<{
          sensor_id: string
          ts: number
          glucose_value: number
          source: string
          version: number
          event_id: string
          superseded_by_event: string
        }>`SELECT sensor_id, (extract(epoch FROM "timestamp") * 1000)::float8 AS ts, glucose_value, source, version,
            event_id::text AS event_id, superseded_by_event::text AS superseded_by_event
          FROM glucose_readings_history ORDER BY sensor_id, "timestamp", version`
        const history: Array<HistoryRow> = historyRows.map((r) => [
          r.sensor_id,
          Number(r.ts),
          Number(r.glucose_value),
          r.source,
          Number(r.version),
          r.event_id,
          r.superseded_by_event
        ])
        assert.isAbove(readings.history.length, 0, "the script replaces values")
        assert.deepStrictEqual(stored.length, readings.rows.length)
        assert.deepStrictEqual(stored, readings.rows)
        assert.deepStrictEqual(history, readings.history)

        // Alerts: every episode once in Cassandra, every column as the engine decided it, read with another
        // client; the open-episode index holds exactly the episodes that have not ended.
        const checkedAt = yield* Clock.currentTimeMillis
        const alerts = expectedAlerts(bySensor, defaultAlertRules, checkedAt)
        assert.strictEqual(alerts.tickChanges, 0, "no clock tick has anything to decide once the load is consumed")
        const kinds = new Set(alerts.alerts.map((a) => `${a.alert_type} ${a.status}`))
        for (const kind of ["LOW RESOLVED", "URGENT_LOW RESOLVED", "URGENT_LOW_SOON RESOLVED", "HIGH RESOLVED"])
          assert.isTrue(kinds.has(kind), `the script raises ${kind}: ${[...kinds].join(", ")}`)
        const users = scripts.map((s) => s.user)
        const keyspace = `dexmon_${run}`
        const contactPoints = requiredServer("CASSANDRA_CONTACT_POINTS")
        const open = alerts.alerts.filter((a) => a.ended_at === null).map((a) => a.alert_id)
        const readAlerts = Effect.sync(() => alertsWithPython(contactPoints, keyspace, users))
        // A member that lost a partition mid-batch may still be finishing that batch after the new owner
        // committed: the rows are read until they settle, then compared.
        const inCassandra = yield* eventually(
          readAlerts,
          (found) =>
            JSON.stringify(found.rows) === JSON.stringify(alerts.alerts) &&
            JSON.stringify(found.open) === JSON.stringify(open),
          { every: "1 second", times: 20 }
        ).pipe(Effect.catch(() => readAlerts))
        assert.strictEqual(new Set(inCassandra.rows.map((r) => r.alert_id)).size, inCassandra.rows.length)
        assert.deepStrictEqual(inCassandra.rows, alerts.alerts)
        assert.deepStrictEqual(inCassandra.open, open)

        // Notifications: exactly one message per (alert, decision) on glucose.alerts.
        const notified = (yield* readAll(log, names.alerts)).map((r) => r.headers["dexmon-notification-id"] ?? "")
        const repeated = notified.filter((id, i) => notified.indexOf(id) !== i)
        assert.deepStrictEqual(repeated, [], "no notification appended twice")
        assert.deepStrictEqual([...notified].sort(), alerts.notifications)
        yield* Effect.logInfo(
          `${total} records, ${readings.rows.length} readings (${readings.history.length} superseded), ${alerts.alerts.length} episodes, ${notified.length} notifications; faults ${JSON.stringify(faults)}`
        )
      }).pipe(Effect.scoped),
    300_000
  )
})

/** Every record of a topic, from the first to the end offsets as they are now. */
const readAll = (log: EventLog["Service"], topic: string) =>
  Effect.gen(function* () {
    const ends = yield* log.endOffsets(topic)
    const from = new Map([...ends.keys()].map((partition) => [partition, 0]))
    const records: ReadonlyArray<ConsumerRecord> = yield* log
      .follow(topic, from)
      .pipe(Stream.take(sum(ends)), Stream.runCollect)
    return records
  })
