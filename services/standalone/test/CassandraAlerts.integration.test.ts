import { spawnSync } from "node:child_process"
import { deriveAlertId } from "@dexmon/domain"
import { EmbeddedPostgres } from "@dexmon/ports"
import { DexMonClient } from "@dexmon/sdk"
import { eventually, layerEmbeddedPostgresTest, makeServiceProcess, requiredServer } from "@dexmon/testing"
import { assert, layer } from "@effect/vitest"
import { Clock, Effect, Fiber, Redacted, Ref, Schedule } from "effect"
import { Kafka, logLevel } from "kafkajs"
import * as Harness from "../../../infra/Harness.ts"

const brokers = requiredServer("KAFKA_BROKERS")
const contactPoints = requiredServer("CASSANDRA_CONTACT_POINTS")
const READINGS = 1_000
/** How many of the 1,000 low readings are recent; the others are an hour old. */
const LIVE = 100
const USER = "alert-user"
const MINUTE = 60_000
const HOUR = 60 * MINUTE

/**
 * Counts the user's alerts with an independent client, the Debian package
 * python3-cassandra: rows, distinct ids, the sorted ids, and rows per
 * `"<alert_type> <status>"`.
 */
const countWithPython = (keyspace: string) => {
  const [host, port] = contactPoints.split(",")[0]!.split(":")
  const script = [
    "import json",
    "from cassandra.cluster import Cluster",
    `session = Cluster(['${host}'], port=${port ?? 9042}).connect('${keyspace}')`,
    `rows = list(session.execute("SELECT alert_id, alert_type, status FROM glucose_alerts WHERE user_id = '${USER}'"))`,
    "kinds = {}",
    "for r in rows: kinds[r.alert_type + ' ' + r.status] = kinds.get(r.alert_type + ' ' + r.status, 0) + 1",
    "ids = sorted(str(r.alert_id) for r in rows)",
    "print(json.dumps({'rows': len(rows), 'distinct': len(set(ids)), 'ids': ','.join(ids), 'kinds': kinds}))"
  ].join("\n")
  const result = spawnSync("/usr/bin/python3", ["-c", script], { encoding: "utf8", timeout: 120_000 })
  if (result.status !== 0) throw new Error(`python3-cassandra failed: ${result.stderr}`)
  return JSON.parse(result.stdout) as {
    readonly rows: number
    readonly distinct: number
    readonly ids: string
    readonly kinds: Readonly<Record<string, number>>
  }
}

/**
 * The i-th of the 1,000 low readings (55: an urgent low), each on a sensor of
 * its own, so each is exactly one episode. The last `LIVE` are minutes old
 * (live: ACTIVE episodes); the others an hour old, late when they reach the
 * log (BACKFILLED).
 */
const lowReading = (now: number, i: number) => ({
  sensor_id: `cgm-${i}` as never,
  timestamp: now - (i < READINGS - LIVE ? HOUR : 5 * MINUTE) - i * 100,
  glucose_value: 55
})

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
  const caughtUp = eventually(
    Effect.promise(async () => {
      const [ends, committed] = await Promise.all([
        admin.fetchTopicOffsets(topic),
        admin.fetchOffsets({ groupId: group, topics: [topic] })
      ])
      const done = new Map(committed[0]!.partitions.map((p) => [p.partition, Number(p.offset)]))
      return ends.every((end) => Number(end.high) === 0 || done.get(end.partition) === Number(end.high))
    }),
    (done) => done,
    { what: `the notifier (${group}) committed to the end of ${topic}`, every: "200 millis", times: 1_500 }
  )

  return { receiver, notifier, gateway, caughtUp, keyspace, group, topic, admin }
})

layer(layerEmbeddedPostgresTest, { timeout: 600_000, excludeTestServices: true })(
  `notifier on Kafka at ${brokers} and Cassandra at ${contactPoints}`,
  (it) => {
    it.effect(
      "1,000 low readings on 1,000 sensors posted twice, then the notifier rewound to the start: exactly 1,000 alerts, same ids; the gateway pages them all",
      () =>
        Effect.gen(function* () {
          const { receiver, notifier, gateway, caughtUp, keyspace, group, topic, admin } = yield* startTopology
          const now = yield* Clock.currentTimeMillis
          const post = Effect.gen(function* () {
            const client = yield* DexMonClient
            yield* client.ingestion.postSensor({
              payload: { readings: Array.from({ length: READINGS }, (_, i) => lowReading(now, i)) }
            })
          }).pipe(Effect.provide(DexMonClient.layer({ baseUrl: receiver.baseUrl, userId: USER })))

          yield* post
          yield* caughtUp
          const first = countWithPython(keyspace)
          assert.strictEqual(first.rows, READINGS)
          // One episode per reading, keyed by its sensor and start.
          const expectedIds = Array.from({ length: READINGS }, (_, i) => {
            const reading = lowReading(now, i)
            return deriveAlertId(reading.sensor_id, reading.timestamp, "URGENT_LOW")
          })
          assert.strictEqual(first.ids, expectedIds.sort().join(","))
          const kinds = { "URGENT_LOW ACTIVE": LIVE, "URGENT_LOW BACKFILLED": READINGS - LIVE }
          assert.deepStrictEqual(first.kinds, kinds)

          yield* post
          yield* caughtUp
          yield* notifier.stop
          // The coordinator sees the stopped member leave shortly after it exits.
          yield* eventually(
            Effect.tryPromise(() => admin.resetOffsets({ groupId: group, topic, earliest: true })),
            () => true,
            {
              what: `${group}'s offsets reset (refused while the stopped member is still in the group)`,
              every: "500 millis",
              times: 90,
              retry: () => true
            }
          )
          yield* notifier.start
          yield* caughtUp
          const after = countWithPython(keyspace)
          assert.strictEqual(after.rows, READINGS)
          assert.strictEqual(after.distinct, READINGS)
          assert.strictEqual(after.ids, first.ids)
          assert.deepStrictEqual(after.kinds, kinds)

          // The gateway pages through them: none skipped, none repeated.
          const seen = yield* Effect.gen(function* () {
            const client = yield* DexMonClient
            const ids: Array<string> = []
            let cursor: string | undefined
            let pages = 0
            do {
              const page = yield* client.alerts.list({
                query: { from: now - 2 * HOUR, to: now + HOUR, limit: 150, cursor }
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
          const posted = yield* Ref.make(0)
          const accepted = yield* Ref.make(0)
          // One live low reading every 50 ms, each on a sensor of its own (so each is exactly one URGENT_LOW
          // episode), until told to stop. A post that is not accepted (an error answer) is not counted as
          // accepted; the one interrupted at the end may land.
          const posting = yield* Effect.gen(function* () {
            const client = yield* DexMonClient
            const n = yield* Ref.getAndUpdate(posted, (k) => k + 1)
            const timestamp = (yield* Clock.currentTimeMillis) - 1_000
            yield* client.ingestion
              .postSensor({
                payload: { sensor_id: `outage-cgm-${n}` as never, timestamp, glucose_value: 50 }
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
          yield* eventually(Ref.get(posted), (n) => n >= 40, { what: "40 readings posted", every: "50 millis" })
          yield* Effect.promise(() => Harness.cassandraOutage(60_000))
          // Readings keep flowing for a while after the node is back.
          const afterOutage = yield* Ref.get(posted)
          yield* eventually(Ref.get(posted), (n) => n >= afterOutage + 100, {
            what: "100 more readings posted after the outage",
            every: "50 millis",
            times: 2_000
          })
          yield* Fiber.interrupt(posting)
          const attempted = yield* Ref.get(posted)
          const acknowledged = yield* Ref.get(accepted)
          yield* caughtUp
          const stored = countWithPython(keyspace)
          // Every accepted reading raised its alert; the post interrupted mid-flight may have landed too.
          assert.isAtLeast(stored.rows, acknowledged)
          assert.isAtMost(stored.rows, attempted)
          assert.strictEqual(stored.distinct, stored.rows)
          // Readings that waited out the outage in the log were live when they reached it: notified, not late.
          assert.deepStrictEqual(stored.kinds, { "URGENT_LOW ACTIVE": stored.rows })
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
