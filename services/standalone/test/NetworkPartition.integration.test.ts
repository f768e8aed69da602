// Issue 15, fault suite: a network partition between the processor and PostgreSQL. The processor runs as its
// own process on the harness's Kafka, with DATABASE_URL pointing at a TCP proxy the test controls in front of a
// database of its own on the machine's PostgreSQL. The proxy drops packets rather than refusing them, so
// nothing on the client's side fails by itself: only the client's own deadline can end the wait.
import { EventId, SensorId, UserId } from "@dexmon/domain"
import { Database, EventLog, isTransientCause, KafkaEventLog, Topics } from "@dexmon/ports"
import {
  eventually,
  freshDatabase,
  type HealMode,
  makeServiceProcess,
  makeTcpProxy,
  requiredServer
} from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { Cause, Clock, ConfigProvider, Context, Duration, Effect, Exit, Layer, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { toProducerRecord } from "./support/AlertDay.ts"

const QUERY_TIMEOUT_MS = 2_000
const CONNECT_TIMEOUT_MS = 2_000
/** @effect/sql-pg's own wait for an interrupted statement to drain before it destroys the connection. */
const DRIVER_DRAIN_MS = 5_000
/** The longest pause of a consumer waiting out an unavailable store between two attempts (`untilAvailable`). */
const BACKOFF_CAP_MS = 10_000
/**
 * The longest one failed attempt can take with the client-side bounds: a statement unanswered for the query
 * timeout, the driver's drain, a connection attempt unanswered for the connect timeout, the pause.
 */
const ATTEMPT_MS = QUERY_TIMEOUT_MS + DRIVER_DRAIN_MS + CONNECT_TIMEOUT_MS + BACKOFF_CAP_MS
const POLL_MS = 100
/** Waits bounded by the attempts they cover, with the same again as margin for batching and scheduling. */
const within = (attempts: number) => ({
  every: Duration.millis(POLL_MS),
  times: (2 * attempts * ATTEMPT_MS) / POLL_MS
})

const TIMED_OUT = `no answer from PostgreSQL within ${QUERY_TIMEOUT_MS / 1000}s`
const SENSORS = 3
const BEFORE = 12
const DURING = 12
const t0 = Date.parse("2026-11-24T08:00:00.000Z")

/** Reading `n`: sensor `n mod SENSORS`, five minutes apart, appended as the receiver appends it. */
const reading = (run: string, n: number) =>
  toProducerRecord({
    sensor: SensorId.make(`${run}-s${n % SENSORS}`),
    user: UserId.make(`${run}-user`),
    timestamp: t0 + n * 300_000,
    value: 100 + n,
    source: "SENSOR",
    eventId: EventId.make(`01900000-0000-7000-8000-${(n + 1).toString(16).padStart(12, "0")}`),
    logTime: t0 + n * 300_000 + 30_000
  })

const occurrences = (text: string, part: string) => text.split(part).length - 1

describe("a network partition between the processor and PostgreSQL (packets dropped, not refused)", () => {
  it.live(
    "a statement that goes silent inside a transaction fails as a lost connection (retryable), not as a defect of its ROLLBACK",
    () =>
      Effect.gen(function* () {
        const database = yield* freshDatabase({ name: `dexmon_partx${Date.now().toString(36)}` })
        const direct = new URL(database.url)
        const proxy = yield* makeTcpProxy({ host: direct.hostname, port: Number(direct.port || 5432) })
        const throughProxy = new URL(database.url)
        throughProxy.hostname = "127.0.0.1"
        throughProxy.port = String(proxy.port)
        const sql = Context.get(
          yield* Layer.build(
            Database.layerPgClient(Redacted.make(throughProxy.toString()), {
              maxConnections: 2,
              bounds: { queryTimeout: Duration.millis(QUERY_TIMEOUT_MS), connectTimeout: "2 seconds" }
            })
          ),
          SqlClient.SqlClient
        )
        const exit = yield* sql
          .withTransaction(
            Effect.gen(function* () {
              yield* sql`SELECT 1`
              yield* proxy.blackhole
              yield* sql`SELECT 2`
            })
          )
          .pipe(Effect.exit)
        assert.isTrue(Exit.isFailure(exit), "the silent statement failed")
        if (Exit.isFailure(exit)) {
          assert.isFalse(Cause.hasDies(exit.cause), `not a defect: ${Cause.pretty(exit.cause)}`)
          const error = Cause.findErrorOption(exit.cause)
          assert.isTrue(error._tag === "Some" && isTransientCause(error.value), Cause.pretty(exit.cause))
        }
      })
  )

  it.live.each<HealMode>(["strand", "resume"])(
    "heal=%s: the stalled statement times out on the client, its connection is dropped, the processor resumes after the heal by itself; every reading stored once, DLQ empty",
    (mode) =>
      Effect.gen(function* () {
        const run = `part${mode}${Date.now().toString(36)}`
        const database = yield* freshDatabase({ name: `dexmon_${run}` })
        const direct = new URL(database.url)
        const proxy = yield* makeTcpProxy({ host: direct.hostname, port: Number(direct.port || 5432) })
        const throughProxy = new URL(database.url)
        throughProxy.hostname = "127.0.0.1"
        throughProxy.port = String(proxy.port)

        const topics = Topics.make(2, `${run}.`)
        const log = Context.get(
          yield* Layer.build(
            KafkaEventLog.layer.pipe(
              Layer.provideMerge(Layer.succeed(Topics, topics)),
              Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv()))
            )
          ),
          EventLog
        )
        const processor = yield* makeServiceProcess("processor", {
          PATH: process.env.PATH,
          DEXMON_PROFILE: "production",
          KAFKA_BROKERS: requiredServer("KAFKA_BROKERS"),
          DEXMON_TOPIC_PREFIX: `${run}.`,
          DEXMON_EVENT_PARTITIONS: "2",
          DEXMON_PROCESSOR_GROUP: `${run}-processor`,
          DATABASE_URL: throughProxy.toString(),
          DEXMON_PG_QUERY_TIMEOUT: `${QUERY_TIMEOUT_MS} millis`,
          DEXMON_PG_CONNECT_TIMEOUT: `${CONNECT_TIMEOUT_MS} millis`
        })
        yield* processor.start

        const stored = database.sql<{
          sensor_id: string
          timestamp_ms: number
          glucose_value: number
          version: number
        }>`
          SELECT sensor_id, (extract(epoch FROM "timestamp") * 1000)::float8 AS timestamp_ms, glucose_value, version
          FROM glucose_readings ORDER BY "timestamp", sensor_id`
        const count = Effect.map(stored, (rows) => rows.length)

        // Before the partition: the processor stores through the proxy.
        yield* log.append(
          topics.names.events,
          Array.from({ length: BEFORE }, (_, n) => reading(run, n))
        )
        yield* eventually(count, (n) => n === BEFORE, within(1))

        // The partition: the processor's next transaction goes out on a pooled connection and meets silence.
        yield* proxy.blackhole
        const partitionedAt = yield* Clock.currentTimeMillis
        yield* log.append(
          topics.names.events,
          Array.from({ length: DURING }, (_, n) => reading(run, BEFORE + n))
        )
        // The stalled statement ends by the client's deadline, as a transient failure (retried, never
        // dead-lettered); the partition lasts until the processor has also failed a second attempt.
        yield* eventually(
          Effect.sync(() => ({
            timedOut: occurrences(processor.output(), TIMED_OUT),
            retried: occurrences(processor.output(), "store unavailable; retrying")
          })),
          ({ timedOut, retried }) => timedOut >= 1 && retried >= 2,
          within(2)
        )
        const timedOutAt = yield* Clock.currentTimeMillis
        assert.strictEqual(yield* count, BEFORE, "nothing reaches PostgreSQL through the partition")
        assert.isAtLeast(
          (yield* proxy.stats).abandonedWhileSilent,
          1,
          "the processor gave the silent connection up instead of reusing it"
        )

        yield* proxy.heal(mode)
        // With the bounds, the processor is at most one attempt away from a fresh connection.
        const healedAt = yield* Clock.currentTimeMillis
        yield* eventually(count, (n) => n === BEFORE + DURING, within(1))
        // Figures for the record, not assertions: the bounds above are what the test holds the processor to.
        yield* Effect.logInfo(
          `heal=${mode}: two failed attempts ${timedOutAt - partitionedAt} ms after the partition began; ` +
            `all stored ${(yield* Clock.currentTimeMillis) - healedAt} ms after the heal`
        )

        const rows = yield* stored
        assert.deepStrictEqual(
          rows.map((row) => [row.sensor_id, Number(row.timestamp_ms), Number(row.glucose_value), Number(row.version)]),
          Array.from({ length: BEFORE + DURING }, (_, n) => [`${run}-s${n % SENSORS}`, t0 + n * 300_000, 100 + n, 1])
        )
        const deadLetters = yield* log.endOffsets(topics.names.eventsDlq)
        assert.strictEqual(
          [...deadLetters.values()].reduce((a, b) => a + b, 0),
          0,
          "a partition is transient: nothing dead-lettered"
        )
        assert.isAtLeast((yield* proxy.stats).connectedSinceHeal, 1, "the processor opened a new connection")
        assert.strictEqual(
          occurrences(processor.output(), "processor consuming"),
          1,
          "the same processor process resumed, never restarted"
        )
        assert.notInclude(processor.output(), "record(s) sent to", "no record went to the DLQ")
      }),
    240_000
  )
})
