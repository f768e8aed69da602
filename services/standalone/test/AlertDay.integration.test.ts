import { type Alert, UserId } from "@dexmon/domain"
import {
  AlertStore,
  CassandraAlertStore,
  Database,
  EventLog,
  KafkaEventLog,
  PostgresEventLog,
  Topics
} from "@dexmon/ports"
import { DexMonClient } from "@dexmon/sdk"
import { eventually, makeDexMonProcessWith, makeServiceProcess, requiredServer } from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { Clock, ConfigProvider, Context, Effect, Layer, Redacted } from "effect"
import {
  type DayRecord,
  dayRulesEnv,
  type EpisodeRow,
  episodeRow,
  expectedEpisodes,
  patterns,
  scriptDay,
  toProducerRecord
} from "./support/AlertDay.ts"

const MINUTE = 60_000
const DAY = 24 * 60 * MINUTE
const SENSORS = 100
const SENSORS_PER_USER = 4
const users = (run: string) => Array.from({ length: SENSORS / SENSORS_PER_USER }, (_, i) => UserId.make(`${run}-u${i}`))

/**
 * The day ends ten minutes from now, so no live sensor falls silent while the
 * test runs (NO_DATA needs twenty minutes); the "silent at the end" sensors
 * stopped forty minutes before it and must get one.
 */
const scriptEndingNow = (run: string) =>
  Effect.map(Clock.currentTimeMillis, (now) => {
    const end = Math.floor(now / (5 * MINUTE)) * 5 * MINUTE + 10 * MINUTE
    return { end, records: scriptDay({ run, end, sensorCount: SENSORS, sensorsPerUser: SENSORS_PER_USER }) }
  })

/** Appends the day to `glucose.events` in log order, each record with its log time. */
const appendDay = (log: EventLog["Service"], topic: string, records: ReadonlyArray<DayRecord>) =>
  Effect.forEach(
    Array.from({ length: Math.ceil(records.length / 1000) }, (_, i) => records.slice(i * 1000, (i + 1) * 1000)),
    (chunk) => log.append(topic, chunk.map(toProducerRecord)),
    { discard: true }
  )

/** How many records the group has committed, over all partitions. */
const committedCount = (log: EventLog["Service"], groupId: string, topic: string) =>
  log.committedOffsets(groupId, topic).pipe(Effect.map((offsets) => [...offsets.values()].reduce((a, b) => a + b, 0)))

/**
 * Waits until the group has committed `count` records; logs where it stood, so a run shows where each fault hit.
 * A broker that just started answers "coordinator loading" for a while: a transient error is asked again, a
 * permanent one fails the test.
 */
const untilCommitted = (log: EventLog["Service"], groupId: string, topic: string, count: number) =>
  eventually(committedCount(log, groupId, topic), (n) => n >= count, {
    what: `${groupId} committed ${count} records of ${topic}`,
    every: "200 millis",
    times: 3000,
    retry: (error) => error.transient
  }).pipe(Effect.tap((committed) => Effect.logInfo(`${groupId}: ${committed} records committed (waited for ${count})`)))

/**
 * The stored episodes once they equal the expected ones (the silent sensors' NO_DATA comes from the
 * clock, a tick after the notifier caught up), or as they stand after a minute, for the assertion's diff.
 */
const settledEpisodes = <E, R>(
  readAll: Effect.Effect<ReadonlyArray<EpisodeRow>, E, R>,
  expected: ReadonlyArray<EpisodeRow>
) =>
  eventually(readAll, (rows) => JSON.stringify(rows) === JSON.stringify(expected), {
    what: "the stored episodes equal to the engine's",
    every: "500 millis",
    times: 120
  }).pipe(Effect.catchTag("EventuallyTimeout", () => readAll))

const sortRows = (alerts: ReadonlyArray<Alert>): ReadonlyArray<EpisodeRow> =>
  alerts.map(episodeRow).sort((a, b) => a.alert_id.localeCompare(b.alert_id))

/** Checks of the day read by hand from the script, beside the exact comparison with the engine's own run. */
const assertDayShape = (rows: ReadonlyArray<EpisodeRow>, run: string) => {
  const of = (pattern: (typeof patterns)[number]) => {
    const index = patterns.indexOf(pattern)
    return rows.filter((r) => Number(r.sensor_id.slice(`${run}-s`.length)) % patterns.length === index)
  }
  const sensorsOf = SENSORS / patterns.length
  assert.deepStrictEqual(of("steady"), [], "a steady day raises nothing")
  assert.strictEqual(of("dip").filter((r) => r.alert_type === "LOW").length, sensorsOf, "one LOW per dip")
  assert.isTrue(of("dip").every((r) => r.status === "RESOLVED"))
  assert.strictEqual(of("urgent low").filter((r) => r.alert_type === "URGENT_LOW").length, sensorsOf)
  const soon = of("urgent low").filter((r) => r.alert_type === "URGENT_LOW_SOON")
  const urgent = of("urgent low").filter((r) => r.alert_type === "URGENT_LOW")
  assert.isTrue(soon.every((s) => urgent.some((u) => u.sensor_id === s.sensor_id && s.started_at < u.started_at)))
  assert.strictEqual(of("high").filter((r) => r.alert_type === "HIGH").length, sensorsOf)
  assert.strictEqual(of("fast fall and rise").filter((r) => r.alert_type === "FALLING_FAST").length, sensorsOf)
  assert.strictEqual(of("fast fall and rise").filter((r) => r.alert_type === "RISING_FAST").length, sensorsOf)
  assert.strictEqual(of("gaps").filter((r) => r.alert_type === "NO_DATA").length, 2 * sensorsOf, "two silences each")
  assert.isTrue(of("late backlog").some((r) => r.alert_type === "LOW" && r.status === "BACKFILLED"))
  assert.deepStrictEqual(
    of("silent at the end").map((r): Array<unknown> => [r.alert_type, r.status, r.ended_at]),
    Array.from({ length: sensorsOf }, (): Array<unknown> => ["NO_DATA", "ACTIVE", null])
  )
}

describe("the alert engine over a scripted day of 100 sensors", () => {
  it.live(
    "Kafka and Cassandra, the notifier as its own process, killed with SIGKILL twice while a second notifier joins and leaves: exactly the expected episodes",
    () =>
      Effect.gen(function* () {
        const run = `day${Date.now().toString(36)}`
        const env: Record<string, string | undefined> = {
          PATH: process.env.PATH,
          DEXMON_PROFILE: "production",
          DEXMON_SHUTDOWN_TIMEOUT: "15s",
          KAFKA_BROKERS: requiredServer("KAFKA_BROKERS"),
          CASSANDRA_CONTACT_POINTS: requiredServer("CASSANDRA_CONTACT_POINTS"),
          CASSANDRA_LOCAL_DC: process.env.CASSANDRA_LOCAL_DC ?? "datacenter1",
          CASSANDRA_KEYSPACE: `dexmon_${run}`,
          // The owners' alert settings (none here: every reading is judged by the deployment's rules).
          DATABASE_URL: requiredServer("DATABASE_URL"),
          DEXMON_TOPIC_PREFIX: `${run}.`,
          DEXMON_NOTIFIER_GROUP: `${run}-notifier`,
          // Small batches, so the run lasts long enough to be interrupted many batches in.
          DEXMON_NOTIFIER_BATCH_SIZE: "25",
          DEXMON_ALERT_TICK_EVERY: "1s",
          ...dayRulesEnv
        }
        const stores = yield* Layer.build(
          Layer.mergeAll(KafkaEventLog.layer, CassandraAlertStore.layer).pipe(
            Layer.provide(Layer.succeed(Topics, Topics.make(8, `${run}.`))),
            Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord(env as Record<string, string>)))
          )
        )
        const log = Context.get(stores, EventLog)
        const alertStore = Context.get(stores, AlertStore)
        const topic = `${run}.glucose.events`
        const groupId = `${run}-notifier`
        const { records } = yield* scriptEndingNow(run)
        yield* appendDay(log, topic, records)

        const first = yield* makeServiceProcess("notifier", env)
        const second = yield* makeServiceProcess("notifier", env)
        const total = records.length
        yield* first.start
        yield* untilCommitted(log, groupId, topic, Math.floor(total * 0.2))
        yield* first.kill9
        yield* first.start
        yield* untilCommitted(log, groupId, topic, Math.floor(total * 0.4))
        yield* second.start
        yield* untilCommitted(log, groupId, topic, Math.floor(total * 0.6))
        yield* first.kill9
        yield* first.start
        yield* untilCommitted(log, groupId, topic, Math.floor(total * 0.8))
        yield* second.stop
        yield* untilCommitted(log, groupId, topic, total)
        const checkedAt = yield* Clock.currentTimeMillis
        const expected = expectedEpisodes(records, checkedAt)

        const readAll = Effect.forEach(users(run), (user) => listAll(alertStore, user)).pipe(
          Effect.map((lists) => sortRows(lists.flat()))
        )
        const actual = yield* settledEpisodes(readAll, expected)
        assert.deepStrictEqual(actual, expected)
        assertDayShape(actual, run)
        assert.include(first.output(), "notifier consuming")
      }).pipe(Effect.scoped),
    600_000
  )

  it.live(
    "the embedded default (pnpm start), killed with SIGKILL once: the same episodes, served by the gateway",
    () =>
      Effect.gen(function* () {
        const run = `eday${Date.now().toString(36)}`
        const dexmon = yield* makeDexMonProcessWith({
          SECURITY_DISABLED: "true",
          DEXMON_NOTIFIER_BATCH_SIZE: "25",
          DEXMON_ALERT_TICK_EVERY: "1s",
          ...dayRulesEnv
        })
        yield* dexmon.start
        const sql = yield* Layer.build(
          Database.layerPgClient(
            Redacted.make(`postgres://postgres:dexmon-embedded@127.0.0.1:${dexmon.pgPort}/postgres`),
            {
              maxConnections: 2
            }
          )
        )
        const log = Context.get(
          yield* Layer.build(
            PostgresEventLog.layer.pipe(
              Layer.provide(Layer.succeed(Topics, Topics.make(8))),
              Layer.provide(Layer.succeedContext(sql))
            )
          ),
          EventLog
        )
        const topic = "glucose.events"
        const groupId = "dexmon-notifier"
        const { records } = yield* scriptEndingNow(run)
        yield* appendDay(log, topic, records)
        yield* untilCommitted(log, groupId, topic, Math.floor(records.length * 0.3))
        yield* dexmon.kill9
        yield* dexmon.start
        yield* untilCommitted(log, groupId, topic, records.length)
        const checkedAt = yield* Clock.currentTimeMillis
        const expected = expectedEpisodes(records, checkedAt)

        const readAll = Effect.forEach(users(run), (user) =>
          Effect.provide(listAllOverHttp(user), DexMonClient.layer({ baseUrl: dexmon.baseUrl, userId: user }))
        ).pipe(Effect.map((lists) => sortRows(lists.flat())))
        const actual = yield* settledEpisodes(readAll, expected)
        assert.deepStrictEqual(actual, expected)
        assertDayShape(actual, run)
      }).pipe(Effect.scoped),
    600_000
  )
})

/** Every episode of a user around the day, through the store, page by page. */
const listAll = (store: AlertStore["Service"], user: UserId) =>
  Effect.gen(function* () {
    const now = yield* Clock.currentTimeMillis
    const items: Array<Alert> = []
    let cursor: string | undefined
    do {
      const page = yield* store.list({ user_id: user, from: now - 3 * DAY, to: now + DAY, limit: 200, cursor })
      items.push(...page.items)
      cursor = page.next_cursor ?? undefined
    } while (cursor !== undefined)
    return items
  })

/** Every episode of the caller around the day, through the gateway's API, page by page. */
const listAllOverHttp = (_user: UserId) =>
  Effect.gen(function* () {
    const client = yield* DexMonClient
    const now = yield* Clock.currentTimeMillis
    const items: Array<Alert> = []
    let cursor: string | undefined
    do {
      const page = yield* client.alerts.list({
        query: { from: now - 3 * DAY, to: now + DAY, limit: 200, ...(cursor === undefined ? {} : { cursor }) }
      })
      items.push(...page.items)
      cursor = page.next_cursor ?? undefined
    } while (cursor !== undefined)
    return items
  })
