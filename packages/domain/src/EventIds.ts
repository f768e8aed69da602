import { randomBytes } from "node:crypto"
import { Clock, Context, Effect, Layer } from "effect"
import { EventId } from "./Identifiers.ts"

const SEQUENCE_BITS = 74n
const SEQUENCE_MAX = (1n << SEQUENCE_BITS) - 1n

/**
 * Issues time-ordered event ids (UUID version 7, RFC 9562 method 3 with a
 * monotonic random sequence). Ids issued by one generator are strictly
 * increasing even within one millisecond or when the clock steps back, which is
 * what makes "the larger event id is the newer event" safe inside a receiver.
 */
export class EventIds extends Context.Service<
  EventIds,
  {
    readonly next: Effect.Effect<EventId>
  }
>()("dexmon/domain/EventIds") {
  static readonly layer = Layer.sync(EventIds, () => {
    let lastMillis = -1
    let sequence = 0n
    const next = Effect.map(Clock.currentTimeMillis, (now) => {
      if (now > lastMillis) {
        lastMillis = now
        // Start each millisecond in the lower half so the sequence has room to grow.
        sequence = randomSequence() >> 1n
      } else if (sequence === SEQUENCE_MAX) {
        lastMillis += 1
        sequence = randomSequence() >> 1n
      } else {
        sequence += 1n
      }
      return formatUuidV7(lastMillis, sequence)
    })
    return EventIds.of({ next })
  })
}

const randomSequence = (): bigint => BigInt(`0x${randomBytes(10).toString("hex")}`) & SEQUENCE_MAX

const formatUuidV7 = (millis: number, sequence: bigint): EventId => {
  const time = millis.toString(16).padStart(12, "0")
  const high = (sequence >> 62n).toString(16).padStart(3, "0")
  const low = sequence & ((1n << 62n) - 1n)
  const variantAndLow = ((2n << 62n) | low).toString(16).padStart(16, "0")
  return EventId.make(
    `${time.slice(0, 8)}-${time.slice(8, 12)}-7${high}-${variantAndLow.slice(0, 4)}-${variantAndLow.slice(4)}`
  )
}
