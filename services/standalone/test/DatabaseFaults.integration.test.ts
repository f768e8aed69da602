// Issue 15, item 1: a database that restarts, crashes, recovers or cuts its sessions is waited out by
// the processor; the DLQ is only for events that cannot be applied. A processor process (as production
// runs it) consumes fresh topics on the harness's Kafka and writes to a PostgreSQL server of this test's
// own, which the test then hurts while readings keep arriving.
import { EventId, encodeGlucoseEvent, eventHeaders, GlucoseEvent, SensorId, UserId } from "@dexmon/domain"
import { Database, EventLog, KafkaEventLog, type ProducerRecord, Topics } from "@dexmon/ports"
import {
  type CrashablePostgres,
  eventually,
  makeCrashablePostgres,
  makeServiceProcess,
  requiredServer
} from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { Clock, ConfigProvider, Context, Effect, Fiber, Layer, Predicate, Redacted, Stream } from "effect"
import { SqlClient } from "effect/sql"

const PARTITIONS = 8
const SENSORS = 100
/** Readings per sensor, 5 minutes apart: 100 sensors x 30 = 3,000 readings a test. */
const PER_SENSOR = 30
const MINUTE = 60_000
const encoder = new TextEncoder()

/** What the receiver appends for one accepted reading (same value, key and headers). */
const readingRecord = (run: string, base: number, n: number): ProducerRecord => {
  const sensor = n % SENSORS
  const step = Math.floor(n / SENSORS)
  const event = new GlucoseEvent({
    schema_version: 1,
    event_id: EventId.make(`01900000-0000-7000-8000-${n.toString(16).padStart(12, "0")}`),
    sensor_id: SensorId.make(`${run}-s${sensor}`),
    user_id: UserId.make(`${run}-u${sensor % 10}`),
    timestamp: base + step * 5 * MINUTE,
    glucose_value: 40 + ((n * 7) % 360),
    source: "SENSOR",
    received_at: base + step * 5 * MINUTE
  })
  return { key: event.sensor_id, value: encoder.encode(encodeGlucoseEvent(event)), headers: eventHeaders(event) }
}

/**
 * The processor process on `database`, consuming the topics `run.*` of the harness's Kafka, and the
 * test's own clients: the event log (to append the load and read the DLQ back) and one connection to
 * the database (to count, to terminate the processor's sessions, to check the result).
 *
 * `DEXMON_WRITE_RETRIES=0`: the retry budget is for events the store refuses; a database fault must
 * never draw on it. With no budget, any fault mistaken for a refusal dead-letters at once instead of
 * being hidden by a lucky retry.
 */
const makeRig = (run: string, database: CrashablePostgres) =>
  Effect.gen(function* () {
    const kafka = Context.get(
      // Topic creation can meet a broker that does not list a topic it just created (a transient answer,
      // more likely with the other scenario creating its topics at the same moment): built again.
      yield* eventually(
        Layer.build(
          KafkaEventLog.layer.pipe(
            Layer.provide(Layer.succeed(Topics, Topics.make(PARTITIONS, `${run}.`))),
            Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv()))
          )
        ),
        () => true,
        {
          what: `the event log on Kafka built, topics ${run}.* created`,
          every: "500 millis",
          times: 10,
          retry: (error) => Predicate.hasProperty(error, "transient") && error.transient === true
        }
      ),
      EventLog
    )
    const names = Topics.make(PARTITIONS, `${run}.`).names
    // One connection, so `pg_backend_pid()` is this client's only session and every other is the processor's.
    const sql = Context.get(
      yield* Layer.build(Database.layerPgClient(Redacted.make(database.url), { maxConnections: 1 })),
      SqlClient.SqlClient
    )
    const processor = yield* makeServiceProcess("processor", {
      PATH: process.env.PATH,
      DEXMON_PROFILE: "production",
      KAFKA_BROKERS: requiredServer("KAFKA_BROKERS"),
      DEXMON_TOPIC_PREFIX: `${run}.`,
      DEXMON_EVENT_PARTITIONS: String(PARTITIONS),
      DEXMON_PROCESSOR_GROUP: `${run}-processor`,
      DEXMON_WRITE_RETRIES: "0",
      DATABASE_URL: database.url
    })
    yield* processor.start
    const base = (yield* Clock.currentTimeMillis) - 3 * 60 * MINUTE
    const records = Array.from({ length: SENSORS * PER_SENSOR }, (_, n) => readingRecord(run, base, n))
    return { kafka, names, sql, processor, base, records }
  })

type Rig = Effect.Success<ReturnType<typeof makeRig>>

/** A query that may meet a connection the server has just dropped: tried again on a fresh one. */
const retried = <A, E, R>(query: Effect.Effect<A, E, R>) =>
  eventually(query, () => true, {
    what: "an answer from the test's PostgreSQL (its connection may just have been dropped)",
    every: "100 millis",
    times: 50,
    retry: () => true
  })

const storedCount = (rig: Rig) =>
  retried(rig.sql<{ n: number }>`SELECT count(*)::int AS n FROM glucose_readings`).pipe(
    Effect.map((rows) => Number(rows[0]?.n ?? 0))
  )

/**
 * Appends `records[from, to)` as the receiver would, 20 at a time and paced (a stream of phones, not
 * one burst), so the processor is writing while the fault strikes.
 */
const appendLoad = (rig: Rig, from: number, to: number) =>
  Effect.gen(function* () {
    for (let start = from; start < to; start += 20) {
      yield* rig.kafka.append(rig.names.events, rig.records.slice(start, Math.min(start + 20, to)))
      yield* Effect.sleep("15 millis")
    }
  })

/** Every record of the events DLQ, read back from the beginning, with why it was dead-lettered. */
const deadLetters = (rig: Rig) =>
  Effect.gen(function* () {
    const ends = yield* rig.kafka.endOffsets(rig.names.eventsDlq)
    const total = [...ends.values()].reduce((a, b) => a + b, 0)
    if (total === 0) return []
    const seen: Array<string> = []
    yield* rig.kafka.consume({ topic: rig.names.eventsDlq, groupId: `${rig.names.eventsDlq}-probe` }).pipe(
      Stream.map((batch) => {
        for (const r of batch.records) {
          seen.push(`${r.key} ${r.headers["dlq-error-tag"]}: ${r.headers["dlq-error-message"]}`)
        }
        return seen.length >= total
      }),
      Stream.takeUntil((done) => done),
      Stream.runDrain
    )
    return seen
  })

/** How many records the events DLQ holds (its end offsets, summed). */
const deadLetterCount = (rig: Rig) =>
  rig.kafka.endOffsets(rig.names.eventsDlq).pipe(Effect.map((ends) => [...ends.values()].reduce((a, b) => a + b, 0)))

/**
 * Waits until the processor has stored at least `atLeast` readings (it is writing, or back to
 * writing), and fails at once, with what the DLQ holds, if it dead-lettered anything meanwhile.
 */
const storedAtLeast = (rig: Rig, atLeast: number) =>
  Effect.gen(function* () {
    const progress = Effect.all({ stored: storedCount(rig), deadLettered: deadLetterCount(rig) })
    const reached = yield* eventually(progress, (p) => p.stored >= atLeast || p.deadLettered > 0, {
      every: "50 millis",
      times: 1200
    })
    if (reached.deadLettered > 0) {
      const letters = yield* deadLetters(rig)
      assert.fail(`${letters.length} event(s) dead-lettered: ${letters.slice(0, 3).join(" | ")}`)
    }
  })

/**
 * Once the load is all appended: every reading is stored exactly once, at version 1 with its own
 * value and event, no version was superseded (the history is empty), and the DLQ is empty.
 */
const assertEveryReadingStoredOnce = (rig: Rig) =>
  Effect.gen(function* () {
    const total = rig.records.length
    yield* storedAtLeast(rig, total)
    assert.strictEqual(yield* storedCount(rig), total)
    const rows = yield* rig.sql<{
      sensor_id: string
      ts: number
      glucose_value: number
      version: number
      event_id: string
    }>`
      SELECT sensor_id, (extract(epoch FROM "timestamp") * 1000)::float8 AS ts, glucose_value, version, event_id::text
      FROM glucose_readings ORDER BY sensor_id, "timestamp"`
    const expected = rig.records
      .map((record) => JSON.parse(new TextDecoder().decode(record.value)))
      .map((event) => [event.sensor_id, Date.parse(event.timestamp), event.glucose_value, 1, event.event_id])
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1]))
    assert.deepStrictEqual(
      rows.map((row) => [row.sensor_id, Number(row.ts), Number(row.glucose_value), Number(row.version), row.event_id]),
      expected
    )
    const [history] = yield* rig.sql<{ n: number }>`SELECT count(*)::int AS n FROM glucose_readings_history`
    assert.strictEqual(Number(history?.n), 0, "no reading was superseded")
    assert.deepStrictEqual(yield* deadLetters(rig), [], "the events DLQ is empty")
  })

/**
 * Ends sessions of the database other than this client's own, as an operator or a failover does:
 * every one (`"all"`), or only those in the middle of a statement or a transaction (`"busy"`), where
 * the processor meets the termination as the answer to its own statement (57P01). How many it ended.
 */
const terminateBackends = (rig: Rig, which: "all" | "busy") =>
  retried(
    rig.sql<{ n: number }>`
      SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
      WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
        AND (${which} = 'all' OR state IN ('active', 'idle in transaction'))`
  ).pipe(Effect.map((rows) => Number(rows[0]?.n ?? 0)))

// The two scenarios share nothing (each has its own server, topics and processor) and spend most of their
// time waiting on the processor's backoff, so they run side by side.
describe.concurrent("database faults under load: the processor waits them out, the DLQ stays empty", () => {
  it.live(
    "every backend terminated with pg_terminate_backend, five rounds: every reading stored once, no dead letter",
    () =>
      Effect.gen(function* () {
        const run = `dbkill${Date.now().toString(36)}`
        const database = yield* makeCrashablePostgres
        yield* database.start
        const rig = yield* makeRig(run, database)
        const total = rig.records.length
        const ROUNDS = 5
        const slice = Math.ceil(total / ROUNDS)
        let terminated = 0
        let midStatement = 0
        for (let round = 0; round < ROUNDS; round++) {
          const from = round * slice
          const to = Math.min(total, from + slice)
          const before = yield* storedCount(rig)
          const load = yield* Effect.forkChild(appendLoad(rig, from, to))
          // (The driver reports a statement cut mid-flight as a closed connection; the server's 57P01 reaches the
          // store when a session is cut between the statements of a transaction or just as it is checked out,
          // rarer here: StoreFailure.test.ts pins that code itself.)
          // The processor is writing this round's readings: cut all its sessions, then, for as long as this
          // round's readings are still arriving, every session of it that is running a statement or holds a
          // transaction open, as soon as it does. (Not until the round is stored: under a constant attack the
          // processor's backoff outgrows the test.)
          yield* storedAtLeast(rig, before + 50)
          terminated += yield* terminateBackends(rig, "all")
          // Until one cut has met the processor mid-statement, the attack on busy sessions goes on past the load
          // (on a busy machine the load can arrive before the processor is back from its backoff), but never
          // past the round being stored, so the processor is not starved.
          yield* eventually(
            Effect.gen(function* () {
              midStatement += yield* terminateBackends(rig, "busy")
              const appended = load.pollUnsafe() !== undefined
              if (!appended || midStatement > 0) return appended
              return (yield* storedCount(rig)) >= to
            }),
            (done) => done,
            { what: `readings ${from}-${to} appended under attack`, every: "10 millis", times: 6_000 }
          )
          terminated += yield* terminateBackends(rig, "all")
          yield* Fiber.join(load)
        }
        yield* Effect.logInfo(
          `${terminated + midStatement} processor sessions terminated, ${midStatement} mid-statement`
        )
        assert.isAtLeast(terminated, ROUNDS, "the processor's sessions were there to terminate")
        assert.isAtLeast(midStatement, 1, "some were terminated in the middle of the processor's work")
        yield* assertEveryReadingStoredOnce(rig)
      }),
    120_000
  )

  it.live(
    "PostgreSQL crashed (immediate stop) and restarted through crash recovery, twice: every reading stored once, no dead letter",
    () =>
      Effect.gen(function* () {
        const run = `dbcrash${Date.now().toString(36)}`
        const database = yield* makeCrashablePostgres
        yield* database.start
        const rig = yield* makeRig(run, database)
        const total = rig.records.length
        const quarter = Math.ceil(total / 4)
        const NOT_ACCEPTING = "the database system is not accepting connections"

        // Crash 1, with the processor writing; readings keep arriving while the server is down.
        let load = yield* Effect.forkChild(appendLoad(rig, 0, quarter))
        yield* storedAtLeast(rig, 100)
        yield* database.crash
        yield* Fiber.join(load)
        load = yield* Effect.forkChild(appendLoad(rig, quarter, 2 * quarter))
        yield* eventually(
          Effect.sync(() => rig.processor.output()),
          (output) => output.includes("store unavailable; retrying without advancing"),
          { every: "50 millis", times: 600 }
        )
        // The restart recovers, and refuses connections (57P03) until the processor has met that answer twice
        // (it came back after the first): a failover or a long recovery, whatever this machine's speed.
        const refusedBefore = database.count(NOT_ACCEPTING)
        yield* database.startInRecovery
        yield* eventually(
          Effect.sync(() => database.count(NOT_ACCEPTING)),
          (refused) => refused >= refusedBefore + 2,
          { every: "50 millis", times: 600 }
        )
        yield* database.endRecovery
        yield* Fiber.join(load)
        yield* storedAtLeast(rig, 2 * quarter)

        // Crash 2: a plain restart straight after, through crash recovery at this machine's own pace.
        load = yield* Effect.forkChild(appendLoad(rig, 2 * quarter, total))
        yield* storedAtLeast(rig, 2 * quarter + 100)
        yield* database.crash
        yield* database.start
        yield* Fiber.join(load)

        assert.isAtLeast(database.count(NOT_ACCEPTING) - refusedBefore, 2, "the processor met 57P03 during recovery")
        yield* assertEveryReadingStoredOnce(rig)
      }),
    120_000
  )
})
