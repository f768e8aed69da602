import { spawnSync } from "node:child_process"
import { EmbeddedPostgres } from "@dexmon/ports"
import { layerEmbeddedPostgresTest, requiredServer } from "@dexmon/ports/testing"
import { DexMonClient } from "@dexmon/sdk"
import { assert, layer } from "@effect/vitest"
import { Clock, Effect, Fiber, Redacted, Ref, Schedule } from "effect"
import { Kafka, logLevel } from "kafkajs"
import * as Harness from "../../../infra/Harness.ts"
import { makeServiceProcess } from "./support/ServiceProcess.ts"

const brokers = requiredServer("KAFKA_BROKERS")
const contactPoints = requiredServer("CASSANDRA_CONTACT_POINTS")
const READINGS = 1_000
const USER = "alert-user"

/** Counts the user's alerts with an independent client: the Debian package python3-cassandra. */
const countWithPython = (keyspace: string) => {
  const [host, port] = contactPoints.split(",")[0]!.split(":")
  const script = [
    "from cassandra.cluster import Cluster",
    `session = Cluster(['${host}'], port=${port ?? 9042}).connect('${keyspace}')`,
    `rows = list(session.execute("SELECT alert_id FROM glucose_alerts WHERE user_id = '${USER}'"))`,
    "print(len(rows)); print(len(set(r.alert_id for r in rows)))",
    "print(','.join(sorted(str(r.alert_id) for r in rows)))"
  ].join("\n")
  const result = spawnSync("/usr/bin/python3", ["-c", script], { encoding: "utf8", timeout: 120_000 })
  if (result.status !== 0) throw new Error(`python3-cassandra failed: ${result.stderr}`)
  const [rows, distinct, ids] = result.stdout.trim().split("\n")
  return { rows: Number(rows), distinct: Number(distinct), ids: ids ?? "" }
}

/** A receiver, a notifier and a gateway as separate processes, on Kafka, Cassandra and a keyspace of their own. */
const startTopology = Effect.gen(function* () {
  const postgres = yield* EmbeddedPostgres
  const run = Date.now().toString(36)
  const keyspace = `dexmon_e2e_${run}`
  const prefix = `alerts-${run}.`
  const group = `notifier-${run}`
  const common = {
    PATH: process.env.PATH,
    KAFKA_BROKERS: brokers,
    CASSANDRA_CONTACT_POINTS: contactPoints,
    CASSANDRA_LOCAL_DC: process.env.CASSANDRA_LOCAL_DC ?? "datacenter1",
    CASSANDRA_KEYSPACE: keyspace,
    DEXMON_TOPIC_PREFIX: prefix,
    DATABASE_URL: Redacted.value(postgres.url)
  }
  const receiver = yield* makeServiceProcess("receiver", common)
  const notifier = yield* makeServiceProcess("notifier", { ...common, DEXMON_NOTIFIER_GROUP: group })
  const gateway = yield* makeServiceProcess("gateway", common)
  yield* Effect.all([receiver.start, notifier.start, gateway.start], { concurrency: "unbounded" })

  const kafka = new Kafka({ clientId: "e2e-admin", brokers: brokers.split(","), logLevel: logLevel.NOTHING })
  const admin = kafka.admin()
  yield* Effect.acquireRelease(
    Effect.promise(() => admin.connect()),
    () => Effect.promise(() => admin.disconnect())
  )
  const topic = `${prefix}glucose.events`
  /** The notifier has committed everything appended so far: a real signal, from Kafka itself. */
  const caughtUp = Effect.promise(async () => {
    const [ends, committed] = await Promise.all([
      admin.fetchTopicOffsets(topic),
      admin.fetchOffsets({ groupId: group, topics: [topic] })
    ])
    const done = new Map(committed[0]!.partitions.map((p) => [p.partition, Number(p.offset)]))
    return ends.every((end) => Number(end.high) === 0 || done.get(end.partition) === Number(end.high))
  }).pipe(Effect.repeat({ schedule: Schedule.spaced("200 millis"), until: (done) => done, times: 1_500 }))

  return { receiver, notifier, gateway, caughtUp, keyspace, group, topic, admin }
})

layer(layerEmbeddedPostgresTest, { timeout: 600_000, excludeTestServices: true })(
  `notifier on Kafka at ${brokers} and Cassandra at ${contactPoints}`,
  (it) => {
    it.effect(
      "1,000 low readings posted twice, then the notifier rewound to the start: exactly 1,000 alerts, same ids; the gateway pages them all",
      () =>
        Effect.gen(function* () {
          const { receiver, notifier, gateway, caughtUp, keyspace, group, topic, admin } = yield* startTopology
          const now = yield* Clock.currentTimeMillis
          const post = Effect.gen(function* () {
            const client = yield* DexMonClient
            yield* client.ingestion.postSensor({
              payload: {
                readings: Array.from({ length: READINGS }, (_, i) => ({
                  sensor_id: `cgm-${i % 10}` as never,
                  timestamp: now - 3_600_000 + Math.floor(i / 10) * 30_000,
                  glucose_value: 55
                }))
              }
            })
          }).pipe(Effect.provide(DexMonClient.layer({ baseUrl: receiver.baseUrl, userId: USER })))

          yield* post
          yield* caughtUp
          const first = countWithPython(keyspace)
          assert.strictEqual(first.rows, READINGS)

          yield* post
          yield* caughtUp
          yield* notifier.stop
          // The coordinator sees the stopped member leave shortly after it exits.
          yield* Effect.tryPromise(() => admin.resetOffsets({ groupId: group, topic, earliest: true })).pipe(
            Effect.retry({ schedule: Schedule.spaced("500 millis"), times: 90 })
          )
          yield* notifier.start
          yield* caughtUp
          const after = countWithPython(keyspace)
          assert.strictEqual(after.rows, READINGS)
          assert.strictEqual(after.distinct, READINGS)
          assert.strictEqual(after.ids, first.ids)

          // The gateway pages through them: none skipped, none repeated.
          const seen = yield* Effect.gen(function* () {
            const client = yield* DexMonClient
            const ids: Array<string> = []
            let cursor: string | undefined
            let pages = 0
            do {
              const page = yield* client.alerts.list({
                query: { from: now - 2 * 3_600_000, to: now + 3_600_000, limit: 150, cursor }
              })
              ids.push(...page.items.map((a) => a.alert_id))
              cursor = page.next_cursor ?? undefined
              pages++
            } while (cursor !== undefined)
            return { ids, pages }
          }).pipe(Effect.provide(DexMonClient.layer({ baseUrl: gateway.baseUrl, userId: USER })))
          assert.isAtLeast(seen.pages, 7)
          assert.strictEqual(seen.ids.length, READINGS)
          assert.strictEqual(new Set(seen.ids).size, READINGS)
          assert.strictEqual([...seen.ids].sort().join(","), first.ids)
        }),
      600_000
    )

    it.effect(
      "Cassandra down for a minute while readings flow: the notifier waits, resumes by itself, no alert missing or repeated",
      () =>
        Effect.gen(function* () {
          const { receiver, caughtUp, keyspace, admin, topic } = yield* startTopology
          const now = yield* Clock.currentTimeMillis
          const posted = yield* Ref.make(0)
          const accepted = yield* Ref.make(0)
          // One low reading every 50 ms, each its own alert, until told to stop. A post that is not
          // accepted (an error answer) is not counted as accepted; the one interrupted at the end may land.
          const posting = yield* Effect.gen(function* () {
            const client = yield* DexMonClient
            const n = yield* Ref.getAndUpdate(posted, (k) => k + 1)
            yield* client.ingestion
              .postSensor({
                payload: {
                  sensor_id: `cgm-${n % 7}` as never,
                  timestamp: now - 3_600_000 + n * 1_000,
                  glucose_value: 50
                }
              })
              .pipe(
                Effect.andThen(Ref.update(accepted, (k) => k + 1)),
                Effect.catch((error) => Effect.logWarning("a post was not accepted", error))
              )
          }).pipe(
            Effect.repeat(Schedule.spaced("50 millis")),
            Effect.provide(DexMonClient.layer({ baseUrl: receiver.baseUrl, userId: USER })),
            Effect.forkChild
          )
          yield* Ref.get(posted).pipe(Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (n) => n >= 40 }))
          yield* Effect.promise(() => Harness.cassandraOutage(60_000))
          // Readings keep flowing for a while after the node is back.
          const afterOutage = yield* Ref.get(posted)
          yield* Ref.get(posted).pipe(
            Effect.repeat({
              schedule: Schedule.spaced("50 millis"),
              until: (n) => n >= afterOutage + 100,
              times: 2_000
            })
          )
          yield* Fiber.interrupt(posting)
          const attempted = yield* Ref.get(posted)
          const acknowledged = yield* Ref.get(accepted)
          yield* caughtUp
          const stored = countWithPython(keyspace)
          // Every accepted reading raised its alert; the post interrupted mid-flight may have landed too.
          assert.isAtLeast(stored.rows, acknowledged)
          assert.isAtMost(stored.rows, attempted)
          assert.strictEqual(stored.distinct, stored.rows)
          // Nothing was given up on: the outage was waited out, not dead-lettered.
          const dlq = yield* Effect.promise(() =>
            admin.fetchTopicOffsets(`${topic.replace(/glucose\.events$/, "")}glucose.events.alerts.dlq`)
          )
          assert.isTrue(
            dlq.every((partition) => Number(partition.high) === 0),
            "the alerts DLQ stays empty"
          )
        }),
      600_000
    )
  }
)
