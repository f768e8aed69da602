import { ReadingInput } from "@dexmon/api"
import { EventIds, HotRetention, SensorId, UserId } from "@dexmon/domain"
import {
  KafkaEventLog,
  PostgresAlertSettingsStore,
  PostgresSensorOwnership,
  SensorOwnership,
  Topics
} from "@dexmon/ports"
import { Ingestion } from "@dexmon/receiver"
import { DexMonClient } from "@dexmon/sdk"
import {
  ALL,
  AUDIENCE,
  eventually,
  freshDatabase,
  ISSUER,
  makeDexMonProcessWith,
  makeIssuer,
  mint,
  requiredServer
} from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Layer, Option, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { Kafka, logLevel } from "kafkajs"

interface Answer {
  readonly status: number
  readonly contentType: string
  readonly text: string
  readonly body: Record<string, unknown>
}

const call = (
  baseUrl: string,
  path: string,
  init: { readonly token: string; readonly body?: unknown; readonly method?: "GET" | "POST" | "DELETE" }
) =>
  Effect.promise(async (): Promise<Answer> => {
    const response = await fetch(`${baseUrl}${path}`, {
      method: init.method ?? (init.body === undefined ? "GET" : "POST"),
      headers: { "content-type": "application/json", authorization: `Bearer ${init.token}` },
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) })
    })
    const text = await response.text()
    return {
      status: response.status,
      contentType: response.headers.get("content-type") ?? "",
      text,
      body: text === "" ? {} : JSON.parse(text)
    }
  })

const REFUSED = "a sensor in this batch belongs to another user; nothing was accepted"

describe("sensor ownership (issue 16)", () => {
  it.live(
    "a refused batch claims none of its sensors and names no other user's; an owner releases a sensor, a non-owner cannot",
    () =>
      Effect.gen(function* () {
        const issuer = yield* makeIssuer
        const key = yield* issuer.newKey("key-1", true)
        const dexmon = yield* makeDexMonProcessWith({
          AUTH_ISSUER: ISSUER,
          AUTH_AUDIENCE: AUDIENCE,
          AUTH_JWKS_URL: issuer.jwksUrl
        })
        yield* dexmon.start
        const alice = yield* mint(key, { sub: "alice", scope: ALL })
        const bob = yield* mint(key, { sub: "bob", scope: ALL })
        // Everything but glucose:write, which releasing needs.
        const aliceWithoutWrite = yield* mint(key, { sub: "alice", scope: "glucose:read alerts:read alerts:write" })
        const now = yield* Clock.currentTimeMillis
        const range = `from=${new Date(now - 3_600_000).toISOString()}&to=${new Date(now + 3_600_000).toISOString()}`
        const reading = (sensor: string, secondsAgo: number, value = 120) => ({
          sensor_id: sensor,
          timestamp: new Date(now - secondsAgo * 1000).toISOString(),
          glucose_value: value
        })
        const post = (token: string, ...readings: ReadonlyArray<ReturnType<typeof reading>>) =>
          call(dexmon.baseUrl, "/api/v1/glucose/sensor", {
            token,
            body: readings.length === 1 ? readings[0] : { readings }
          })
        const release = (token: string, sensor: string) =>
          call(dexmon.baseUrl, `/api/v1/sensors/${sensor}/owner`, { token, method: "DELETE" })
        const readingsOf = (token: string) =>
          call(dexmon.baseUrl, `/api/v1/readings?${range}`, { token }).pipe(
            Effect.map((answer) =>
              (answer.body.items as Array<Record<string, unknown>>).map((r) => `${r.sensor_id}@${r.timestamp}`).sort()
            )
          )
        const storedFor = (token: string, what: string, expected: ReadonlyArray<string>) =>
          eventually(readingsOf(token), (items) => items.length >= expected.length, {
            what,
            every: "50 millis",
            times: 400
          }).pipe(Effect.map((items) => assert.deepStrictEqual(items, [...expected].sort(), what)))
        const at = (r: ReturnType<typeof reading>) => `${r.sensor_id}@${r.timestamp}`

        const aliceFirst = reading("alice-cgm", 600)
        assert.strictEqual((yield* post(alice, aliceFirst)).status, 202)

        // Bob's batch: a new sensor of his and Alice's. Refused whole, with a JSON error that names no sensor.
        const bobNew = reading("bob-new", 590)
        const refused = yield* post(bob, bobNew, reading("alice-cgm", 580, 300))
        assert.strictEqual(refused.status, 403, refused.text)
        assert.match(refused.contentType, /^application\/json/)
        assert.deepStrictEqual(refused.body, { _tag: "Forbidden", message: REFUSED })
        assert.notInclude(refused.text, "alice-cgm")
        assert.notInclude(refused.text, "bob-new")

        // And it claimed nothing: Alice can post Bob's "new" sensor (which makes it hers).
        const aliceOnBobNew = reading("bob-new", 570)
        const aliceSecond = reading("alice-cgm", 560)
        const claimedByAlice = yield* post(alice, aliceOnBobNew, aliceSecond)
        assert.strictEqual(claimedByAlice.status, 202, claimedByAlice.text)
        // Once Alice's later readings of both sensors are stored (each behind Bob's on its sensor's partition,
        // had his reached the log), Bob has no reading at all.
        yield* storedFor(alice, "Alice's three readings stored", [at(aliceFirst), at(aliceOnBobNew), at(aliceSecond)])
        assert.deepStrictEqual(yield* readingsOf(bob), [])

        // A release by anyone but the owner is 404 whatever the sensor (someone else's, or nobody's), and changes nothing.
        const notBobs = yield* release(bob, "bob-new")
        assert.strictEqual(notBobs.status, 404, notBobs.text)
        assert.match(notBobs.contentType, /^application\/json/)
        assert.deepStrictEqual(notBobs.body, { _tag: "NotFound", message: "no such sensor for this caller" })
        assert.deepStrictEqual((yield* release(bob, "never-posted")).body, notBobs.body)
        const withoutScope = yield* release(aliceWithoutWrite, "bob-new")
        assert.strictEqual(withoutScope.status, 403, withoutScope.text)
        assert.match(String(withoutScope.body.message), /glucose:write/)
        assert.deepStrictEqual((yield* post(bob, reading("bob-new", 550))).body, {
          _tag: "Forbidden",
          message: REFUSED
        })

        // The owner releases it through the SDK; a second release finds nothing to release.
        yield* Effect.gen(function* () {
          const client = yield* DexMonClient
          yield* client.sensors.release({ params: { sensor_id: SensorId.make("bob-new") } })
          const again = yield* client.sensors
            .release({ params: { sensor_id: SensorId.make("bob-new") } })
            .pipe(Effect.flip)
          assert.strictEqual(again._tag, "NotFound")
        }).pipe(Effect.provide(DexMonClient.layer({ baseUrl: dexmon.baseUrl, token: alice })))

        // Now Bob's batch claims it, and Alice's is refused; her reading of it stays hers, his is his.
        const bobAfter = reading("bob-new", 540)
        assert.strictEqual((yield* post(bob, bobAfter)).status, 202)
        assert.deepStrictEqual((yield* post(alice, reading("bob-new", 530))).body, {
          _tag: "Forbidden",
          message: REFUSED
        })
        yield* storedFor(bob, "Bob's reading of the sensor he claimed stored", [at(bobAfter)])
        assert.deepStrictEqual(yield* readingsOf(alice), [at(aliceFirst), at(aliceOnBobNew), at(aliceSecond)].sort())

        // Bob's release of his own sensor: 204 without a body.
        const released = yield* release(bob, "bob-new")
        assert.deepStrictEqual([released.status, released.text], [204, ""])
      }),
    120_000
  )
})

describe("a batch the event log refuses (issue 16)", () => {
  it.live("releases the sensors it claimed, and only those", () =>
    Effect.gen(function* () {
      const run = `own${Date.now().toString(36)}`
      const topics = Topics.make(1, `${run}.`)
      // The events topic takes no record at all: every append to it is refused whole, before any is sent.
      const admin = new Kafka({
        clientId: `${run}-admin`,
        brokers: requiredServer("KAFKA_BROKERS").split(","),
        logLevel: logLevel.NOTHING
      }).admin()
      yield* Effect.acquireRelease(
        Effect.promise(() => admin.connect()),
        () => Effect.promise(() => admin.disconnect())
      )
      yield* Effect.acquireRelease(
        Effect.promise(() =>
          admin.createTopics({
            waitForLeaders: true,
            topics: [
              {
                topic: topics.names.events,
                numPartitions: 1,
                configEntries: [{ name: "max.message.bytes", value: "64" }]
              }
            ]
          })
        ),
        () => Effect.promise(() => admin.deleteTopics({ topics: topics.specs.map((spec) => spec.name) }))
      )
      const database = yield* freshDatabase()
      const stores = Layer.mergeAll(PostgresSensorOwnership.layer, PostgresAlertSettingsStore.layer).pipe(
        Layer.provide(Layer.succeed(SqlClient.SqlClient, database.sql))
      )
      const receiver = Ingestion.layer.pipe(
        Layer.provideMerge(
          Layer.mergeAll(
            KafkaEventLog.layer.pipe(Layer.provideMerge(Layer.succeed(Topics, topics))),
            stores,
            EventIds.layer,
            HotRetention.layerConfig
          )
        )
      )
      yield* Effect.gen(function* () {
        const ingestion = yield* Ingestion
        const ownership = yield* SensorOwnership
        const bob = UserId.make(`${run}-bob`)
        const [ownedBefore, fresh] = [SensorId.make(`${run}-owned`), SensorId.make(`${run}-fresh`)]
        // Bob's sensor from an earlier batch, which this refusal must not take from him.
        yield* ownership.claim(bob, [ownedBefore])
        const now = yield* Clock.currentTimeMillis
        const batch = Schema.decodeUnknownSync(Schema.Array(ReadingInput))(
          [ownedBefore, fresh].map((sensor) => ({
            sensor_id: sensor,
            timestamp: new Date(now - 60_000).toISOString(),
            glucose_value: 120
          }))
        )
        const failure = yield* ingestion.accept(bob, "SENSOR", batch, (i) => `readings[${i}].`).pipe(Effect.flip)
        assert.strictEqual(failure._tag, "ServiceUnavailable")
        assert.match(failure.message, /nothing was accepted/)
        assert.deepStrictEqual(
          [yield* ownership.ownerOf(ownedBefore), yield* ownership.ownerOf(fresh)],
          [Option.some(bob), Option.none()]
        )
      }).pipe(Effect.provide(receiver))
    })
  )
})
