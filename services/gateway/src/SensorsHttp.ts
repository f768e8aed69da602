import { CurrentCaller, DexMonApi } from "@dexmon/api"
import { SensorOwnership } from "@dexmon/ports"
import { Effect, Layer } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { AlertControls } from "./AlertControls.ts"
import { unavailable } from "./Unavailable.ts"

/**
 * The caller's sensors: releasing one lets the next user who posts it claim it. A sensor that is not
 * the caller's (another user's, or nobody's) is answered 404 alike, so another user's ownership is not
 * revealed.
 *
 * The release goes on the sensor's events first (`AlertControls.releaseSensor`), then the owner's row
 * is deleted: the notifier ends the owner's alerting at that point of the log, in order with the
 * readings, so open episodes do not stay open and no NO_DATA fires for a sensor given up. In that order
 * a failure leaves the caller the owner, so asking again completes the release (a release the log holds
 * twice ends nothing more); the other order could lose the release for good, as a second request would
 * find the sensor no longer the caller's. A reading posted between the two is still the owner's and
 * takes their alerting up again: the next owner's first reading then ends it (the engine's hand-over).
 */
export const SensorsHttp = HttpApiBuilder.group(
  DexMonApi,
  "sensors",
  Effect.fn(function* (handlers) {
    const ownership = yield* SensorOwnership
    const controls = yield* AlertControls
    return handlers.handle(
      "release",
      Effect.fn("SensorsHttp.release")(function* ({ params }) {
        const caller = yield* CurrentCaller
        yield* controls.releaseSensor(caller.userId, params.sensor_id)
        // Only the caller's row goes: had another request released it meanwhile, the appended release passes
        // in the notifier as a former owner's action.
        yield* ownership
          .release(caller.userId, [params.sensor_id])
          .pipe(Effect.catchTag("SensorOwnershipError", unavailable("sensor ownership")))
        yield* Effect.logInfo(`sensor ${params.sensor_id} released by its owner`)
      })
    )
  })
).pipe(Layer.provide(AlertControls.layer))
