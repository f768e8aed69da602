import { ALL, eventually, makeServiceProcess, mint, sampleResidentMemory } from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { Clock, DateTime, Effect, Fiber, Ref, Schema } from "effect"
import { FetchHttpClient, HttpClient, HttpClientRequest, HttpClientResponse } from "effect/http"
import * as Harness from "../../../infra/Harness.ts"
import { makeProductionEnvironment } from "./support/Topology.ts"

const HOUR = 3_600_000
const SENSORS = 500
/** Concurrent posters, each posting its next reading as soon as the previous one is answered. */
const POSTERS = 32
/** Readings answered 202 before the broker is killed: both services are warm and under load. */
const WARM_UP = 300
/** Posts answered 503 after the kill before the broker is started again: the outage has reached the callers. */
const OUTAGE_503S = POSTERS
/** Readings answered 202 after the broker is back before the load stops. */
const AFTER_RECOVERY = 300
/** Generous: what an outage may add to the receiver's resident set over its peak under the same load before. */
const RSS_HEADROOM_MIB = 150

const Accepted = Schema.Struct({ event_ids: Schema.Array(Schema.String) })

/** What the receiver answered to one post: its status (0: no answer at all) and, for a 202, the event's id. */
interface Answer {
  readonly status: number
  readonly eventId?: string | undefined
  readonly detail?: string | undefined
  /** The `Retry-After` header of an answer other than 202. */
  readonly retryAfter?: string | undefined
}
interface Outcome extends Answer {
  readonly n: number
  /** Clock time the answer arrived. */
  readonly at: number
}

const seconds = (millis: number) => `${(millis / 1000).toFixed(2)} s`

describe("Kafka broker SIGKILLed under load (issue 15)", () => {
  it.live(
    "every reading answered 202 is stored exactly once; the receiver accepts again once the broker is back; its memory stays bounded",
    () =>
      Effect.gen(function* () {
        // A broker of this test's own: the shared one on 19092 serves other tests right now.
        const run = `brk${Date.now().toString(36)}`
        const [broker, production] = yield* Effect.all(
          [
            Effect.acquireRelease(
              Effect.promise(() => Harness.privateKafka()),
              (kafka) => Effect.promise(() => kafka.stop())
            ),
            makeProductionEnvironment(run)
          ],
          { concurrency: "unbounded" }
        )
        const { sql } = production.database
        const env = { ...production.env, KAFKA_BROKERS: broker.brokers }
        const receiver = yield* makeServiceProcess("receiver", env)
        const processor = yield* makeServiceProcess("processor", env)
        yield* Effect.all([receiver.start, processor.start], { concurrency: "unbounded" })
        yield* Effect.logInfo("receiver and processor ready; the load starts")
        const receiverPid = receiver.pid()
        if (receiverPid === undefined) return yield* Effect.die(new Error("the receiver has no pid after start"))
        const memory = yield* sampleResidentMemory(receiverPid, "100 millis")

        const token = yield* mint(production.key, { sub: "broker-faults-user", scope: ALL, exp: 3_600 })
        const http = yield* HttpClient.HttpClient
        const base = (yield* Clock.currentTimeMillis) - HOUR
        // One reading per n, its own (sensor, timestamp): 10 ms apart from an hour ago, never in the future.
        const sensorOf = (n: number) => `${run}-s${n % SENSORS}`
        const timestampOf = (n: number) => base + n * 10
        const glucoseOf = (n: number) => 80 + (n % 100)
        const keyOf = (sensorId: string, timestamp: number) => `${sensorId}@${timestamp}`

        const post = (n: number): Effect.Effect<Answer> =>
          HttpClientRequest.post(`${receiver.baseUrl}/api/v1/glucose/sensor`).pipe(
            HttpClientRequest.bearerToken(token),
            HttpClientRequest.bodyJsonUnsafe({
              sensor_id: sensorOf(n),
              timestamp: DateTime.formatIso(DateTime.makeUnsafe(timestampOf(n))),
              glucose_value: glucoseOf(n)
            }),
            http.execute,
            Effect.flatMap(
              (response): Effect.Effect<Answer, unknown> =>
                response.status === 202
                  ? HttpClientResponse.schemaBodyJson(Accepted)(response).pipe(
                      Effect.map((body) => ({ status: 202, eventId: body.event_ids[0] }))
                    )
                  : response.text.pipe(
                      Effect.map((text) => ({
                        status: response.status,
                        detail: text.slice(0, 300),
                        retryAfter: response.headers["retry-after"]
                      }))
                    )
            ),
            Effect.catch((error) => Effect.succeed({ status: 0, detail: String(error) }))
          )

        // The load: many posters over many sensors, each answer recorded with the time it arrived.
        const outcomes: Array<Outcome> = []
        const next = yield* Ref.make(0)
        const running = yield* Ref.make(true)
        const poster = Effect.gen(function* () {
          while (yield* Ref.get(running)) {
            const n = yield* Ref.getAndUpdate(next, (k) => k + 1)
            const answer = yield* post(n)
            outcomes.push({ n, at: yield* Clock.currentTimeMillis, ...answer })
          }
        })
        const count = (status: number, since = Number.NEGATIVE_INFINITY) =>
          Effect.sync(() => outcomes.filter((o) => o.status === status && o.at >= since).length)
        const waitUntil = (what: string, counted: Effect.Effect<number>, atLeast: number) =>
          eventually(counted, (found) => found >= atLeast, { every: "50 millis", times: 2_400 }).pipe(
            dieWith(
              (error) =>
                new Error(
                  `${what}: ${error.message}\n--- receiver (tail)\n${receiver.output().slice(-3000)}\n--- processor (tail)\n${processor.output().slice(-3000)}`
                )
            )
          )

        const loadStarted = yield* Clock.currentTimeMillis
        const posters = yield* Effect.all(Array.from({ length: POSTERS }, () => Effect.forkChild(poster)))
        yield* waitUntil(`${WARM_UP} readings answered 202 before the kill`, count(202), WARM_UP)

        const killStarted = yield* Clock.currentTimeMillis
        yield* Effect.promise(() => broker.kill())
        const killed = yield* Clock.currentTimeMillis
        yield* Effect.logInfo(`broker killed after ${outcomes.length} posts; the load goes on`)
        yield* waitUntil(`${OUTAGE_503S} posts answered 503 during the outage`, count(503, killed), OUTAGE_503S)

        const restartStarted = yield* Clock.currentTimeMillis
        yield* Effect.logInfo(`${yield* count(503, killed)} posts answered 503 since the kill; restarting the broker`)
        // Resolves at the broker's first answered metadata request (a kafkajs admin client polls it every 200 ms).
        yield* Effect.promise(() => broker.restart())
        const brokerAnswered = yield* Clock.currentTimeMillis
        // Posts the broker acknowledged before it died were answered long before its restart began (a round
        // of 503s came in between), so any 202 from then on rests on the restarted broker: accepting again.
        const firstAccepted = yield* eventually(
          Effect.sync(() => outcomes.find((o) => o.status === 202 && o.at >= restartStarted)),
          (found) => found !== undefined,
          { every: "20 millis", times: 3_000 }
        ).pipe(
          dieWith(
            () =>
              new Error(`no post answered 202 within 60 s of the broker's return:\n${receiver.output().slice(-3000)}`)
          )
        )
        const acceptAgainMs = firstAccepted!.at - brokerAnswered
        yield* Effect.logInfo(`broker back; the receiver accepted again ${seconds(acceptAgainMs)} after it answered`)
        yield* waitUntil(
          `${AFTER_RECOVERY} readings answered 202 after the broker's return`,
          count(202, brokerAnswered),
          AFTER_RECOVERY
        )
        yield* Ref.set(running, false)
        yield* Effect.all(posters.map(Fiber.join))
        const loadEnded = yield* Clock.currentTimeMillis
        yield* Effect.logInfo(`load stopped after ${outcomes.length} posts; waiting for the processor`)

        const acceptedOnce = new Map(outcomes.filter((o) => o.status === 202).map((o) => [o.n, o.eventId]))
        const unknown = outcomes.filter((o) => o.status === 503).map((o) => o.n)
        const nOfKey = new Map<string, number>()
        for (let n = 0; n < (yield* Ref.get(next)); n++) nOfKey.set(keyOf(sensorOf(n), timestampOf(n)), n)
        const storedRows = sql<{
          readonly sensor_id: string
          readonly timestamp_ms: number
          readonly glucose_value: number
          readonly version: number
          readonly event_id: string
        }>`SELECT sensor_id, (extract(epoch FROM "timestamp") * 1000)::float8 AS timestamp_ms, glucose_value,
                  version, event_id::text AS event_id
           FROM glucose_readings`
        const storedNs = (rows: ReadonlyArray<{ readonly sensor_id: string; readonly timestamp_ms: number }>) =>
          new Set(rows.flatMap((row) => nOfKey.get(keyOf(row.sensor_id, Number(row.timestamp_ms))) ?? []))
        /** Waits until the processor has stored every one of `ns`; the readings stored by then. */
        const storedIncluding = (what: string, ns: ReadonlyArray<number>) =>
          eventually(
            storedRows.pipe(
              Effect.map((rows) => {
                const stored = storedNs(rows)
                return { rows, missing: ns.filter((n) => !stored.has(n)) }
              })
            ),
            (answer) => answer.missing.length === 0,
            { every: "500 millis", times: 240 }
          ).pipe(
            Effect.map((answer) => answer.rows),
            dieWith(
              () =>
                new Error(
                  `not every ${what} was stored within 2 minutes\n--- processor (tail)\n${processor.output().slice(-3000)}`
                )
            )
          )

        // Once every reading answered 202 is stored, the 503'd ones that landed anyway are stored too: the
        // receiver's producer sends appends in order, so those went to the log before the later accepted ones.
        const storedAfterLoad = storedNs(yield* storedIncluding("reading answered 202", [...acceptedOnce.keys()]))
        const landedAfter503 = unknown.filter((n) => storedAfterLoad.has(n)).length

        // A 503 says the outcome is unknown, so the app posts the same reading again; once accepted, it too
        // must be stored once, whether or not its first post had landed.
        const reposts = yield* Effect.forEach(unknown, (n) => Effect.map(post(n), (answer) => ({ n, ...answer })), {
          concurrency: 16
        })
        yield* storedIncluding(
          "503'd reading answered 202 when posted again",
          reposts.filter((r) => r.status === 202).map((r) => r.n)
        )
        const rows = yield* storedRows
        const duplicates = (yield* sql<{ readonly count: number }>`
          SELECT count(*)::int AS count FROM (
            SELECT 1 FROM glucose_readings GROUP BY sensor_id, "timestamp" HAVING count(*) > 1) AS twice`)[0]!.count
        const superseded = (yield* sql<{ readonly count: number }>`
          SELECT count(*)::int AS count FROM glucose_readings_history`)[0]!.count

        // Each 503 is the project's JSON error, says when to come back and whether anything was accepted,
        // and that sending the same readings again is safe.
        const unclear = outcomes.filter(
          (o) =>
            o.status === 503 &&
            !(
              o.retryAfter === "5" &&
              o.detail?.includes('"_tag":"ServiceUnavailable"') === true &&
              (o.detail.includes("nothing was accepted") || o.detail.includes("which is safe"))
            )
        )
        assert.deepStrictEqual(
          unclear.slice(0, 3),
          [],
          `503s without Retry-After or a clear message (${unclear.length})`
        )
        const others = outcomes.filter((o) => o.status !== 202 && o.status !== 503)
        const before = memory.within(loadStarted, killStarted)
        const during = memory.within(killed, brokerAnswered)
        yield* Effect.logInfo(
          [
            "broker SIGKILLed under load:",
            `  posts: ${outcomes.length} (${acceptedOnce.size} answered 202, ${unknown.length} answered 503, ${others.length} other)`,
            `  503'd readings posted again: ${reposts.length} (${reposts.filter((r) => r.status === 202).length} answered 202)`,
            `  ${landedAfter503} of the ${unknown.length} readings answered 503 had been stored by the time all those answered 202 were`,
            `  stored in the end: ${rows.length} readings, ${duplicates} keys twice, ${superseded} history rows`,
            `  outage: ${seconds(brokerAnswered - killed)} (broker restart ${seconds(brokerAnswered - restartStarted)}), load ${seconds(loadEnded - loadStarted)}`,
            `  receiver accepted again ${seconds(acceptAgainMs)} after the broker's first answered metadata request`,
            `  receiver RSS: ${before.peakMiB.toFixed(1)} MiB peak before the kill (${before.count} samples), ${during.peakMiB.toFixed(1)} MiB peak during the outage (${during.count} samples)`
          ].join("\n")
        )

        assert.deepStrictEqual(others.slice(0, 5), [], `posts answered neither 202 nor 503 (${others.length} in all)`)
        assert.deepStrictEqual(
          reposts.filter((r) => r.status !== 202).slice(0, 5),
          [],
          "a 503'd reading posted again once the broker was back was not accepted"
        )
        // (b) Each key once, at version 1 with its own value, nothing superseded; a reading answered 202 on its
        // only post holds the event that answer named.
        assert.strictEqual(duplicates, 0, "readings stored twice under one (sensor_id, timestamp)")
        assert.strictEqual(superseded, 0, "history rows: a reading was overwritten by a duplicate or a replay")
        const wrong = rows.flatMap((row) => {
          const n = nOfKey.get(keyOf(row.sensor_id, Number(row.timestamp_ms)))
          const expected = n === undefined ? undefined : acceptedOnce.get(n)
          const fine =
            n !== undefined &&
            Number(row.version) === 1 &&
            Number(row.glucose_value) === glucoseOf(n) &&
            (expected === undefined || expected === row.event_id)
          return fine ? [] : [{ n, ...row, answeredEventId: expected }]
        })
        assert.deepStrictEqual(
          wrong.slice(0, 5),
          [],
          `stored readings that differ from what was posted (${wrong.length})`
        )
        // (a) The "accepts again within 5 s" is not asserted on this clock: how soon the restarted
        // broker serves produce requests depends on the machine. The figure is printed above; the
        // receiver's share of it, its reconnect cadence, is asserted on the test clock in
        // packages/ports/test/RecreatingProducer.test.ts.
        // (c) Bounded memory while appends cannot be acknowledged.
        assert.isAtLeast(during.count, 10, "too few RSS samples during the outage: did the receiver die?")
        assert.isBelow(
          during.peakMiB,
          before.peakMiB + RSS_HEADROOM_MIB,
          `receiver RSS peaked at ${during.peakMiB.toFixed(1)} MiB during the outage, ${before.peakMiB.toFixed(1)} MiB before it`
        )
      }).pipe(Effect.provide(FetchHttpClient.layer)),
    420_000
  )
})

/** Turns a wait that ran out into a defect that says what was awaited (and what the services logged). */
const dieWith =
  <E>(describe: (error: E) => Error) =>
  <A, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, never, R> =>
    self.pipe(Effect.mapError(describe), Effect.orDie)
