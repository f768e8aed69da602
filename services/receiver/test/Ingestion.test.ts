import { type ReadingInput, ServiceUnavailable } from "@dexmon/api"
import { EventIds, HotRetention, SensorId, UserId } from "@dexmon/domain"
import {
  AlertSettingsStore,
  AlertSettingsStoreError,
  EventLog,
  SensorOwnership,
  SensorOwnershipError,
  Topics
} from "@dexmon/ports"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Layer, Stream } from "effect"
import { Ingestion } from "../src/index.ts"

const user = UserId.make("user-1")
const sensor = SensorId.make("sensor-1")
const readings: ReadonlyArray<ReadingInput> = [{ sensor_id: sensor, timestamp: Date.now(), glucose_value: 100 }]
const pathOf = (index: number) => `readings[${index}].timestamp`

/** What the ports were asked, in order. */
interface Journal {
  readonly calls: Array<string>
}

const failure = { message: "down", transient: true }

/**
 * Ingestion on port doubles: the ownership claim and the settings lookup behave as given, the event log
 * takes every append. Only what `accept` uses is there.
 */
const ingestionWith = (
  journal: Journal,
  claim: SensorOwnership["Service"]["claim"],
  currentVersion: AlertSettingsStore["Service"]["currentVersion"]
) =>
  Ingestion.layer.pipe(
    Layer.provide(
      Layer.mergeAll(
        Layer.succeed(
          SensorOwnership,
          SensorOwnership.of({
            claim,
            release: (_, sensorIds) =>
              Effect.sync(() => journal.calls.push(`release ${sensorIds.join(",")}`)).pipe(Effect.as(sensorIds)),
            ownerOf: () => Effect.die("not used"),
            ping: Effect.void
          })
        ),
        Layer.succeed(
          AlertSettingsStore,
          AlertSettingsStore.of({
            current: () => Effect.die("not used"),
            currentVersion,
            at: () => Effect.die("not used"),
            put: () => Effect.die("not used"),
            ping: Effect.void
          })
        ),
        Layer.succeed(
          EventLog,
          EventLog.of({
            append: (_, records) =>
              Effect.sync(() => journal.calls.push(`append ${records.length}`)).pipe(Effect.as([])),
            consume: () => Stream.empty,
            endOffsets: () => Effect.succeed(new Map()),
            committedOffsets: () => Effect.succeed(new Map()),
            offsetsForTime: () => Effect.succeed(new Map()),
            follow: () => Stream.empty,
            ping: Effect.void
          })
        ),
        Layer.succeed(Topics, Topics.make(1)),
        Layer.succeed(HotRetention, HotRetention.of({ millis: 90 * 86_400_000 })),
        EventIds.layer
      )
    )
  )

const accept = Effect.flatMap(Ingestion, (ingestion) => ingestion.accept(user, "SENSOR", readings, pathOf))

describe("Ingestion.accept", () => {
  it.live("the ownership claim and the settings lookup run at the same time", () =>
    Effect.gen(function* () {
      const journal: Journal = { calls: [] }
      const lookupStarted = yield* Deferred.make<void>()
      // The claim answers only once the settings lookup has begun: one after the other, it never would
      // (the bound turns that hang into a failed claim).
      const claim = () =>
        Deferred.await(lookupStarted).pipe(
          Effect.timeout("5 seconds"),
          Effect.as({ foreign: [], claimed: [sensor] }),
          Effect.mapError(() => new SensorOwnershipError({ operation: "claim", message: "held", transient: true }))
        )
      const currentVersion = () => Deferred.succeed(lookupStarted, undefined).pipe(Effect.as(3))
      const accepted = yield* accept.pipe(Effect.provide(ingestionWith(journal, claim, currentVersion)))
      assert.strictEqual(accepted.accepted, 1)
      assert.deepStrictEqual(journal.calls, ["append 1"])
    })
  )

  it.live("a failed settings lookup gives back the sensors the claim took, and nothing is appended", () =>
    Effect.gen(function* () {
      const journal: Journal = { calls: [] }
      const claim = () => Effect.succeed({ foreign: [], claimed: [sensor] })
      const currentVersion = () => Effect.fail(new AlertSettingsStoreError({ operation: "currentVersion", ...failure }))
      const error = yield* accept.pipe(Effect.provide(ingestionWith(journal, claim, currentVersion)), Effect.flip)
      assert.instanceOf(error, ServiceUnavailable)
      assert.include(error.message, "alert settings are unavailable")
      assert.deepStrictEqual(journal.calls, [`release ${sensor}`])
    })
  )

  it.live("a failed claim answers 503 and releases nothing, whatever the settings lookup did", () =>
    Effect.gen(function* () {
      const journal: Journal = { calls: [] }
      const claim = () => Effect.fail(new SensorOwnershipError({ operation: "claim", ...failure }))
      const currentVersion = () => Effect.succeed(3)
      const error = yield* accept.pipe(Effect.provide(ingestionWith(journal, claim, currentVersion)), Effect.flip)
      assert.instanceOf(error, ServiceUnavailable)
      assert.include(error.message, "sensor ownership is unavailable")
      assert.deepStrictEqual(journal.calls, [])
    })
  )
})
