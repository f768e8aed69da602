import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect } from "effect"
import { KafkaEventLog } from "../src/index.ts"

/** `kafkaConfig` read from these variables (the brokers given), or the message it is refused with. */
const read = (variables: Record<string, string>) =>
  Effect.gen(function* () {
    return yield* KafkaEventLog.kafkaConfig
  }).pipe(
    Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord({ KAFKA_BROKERS: "b1:9092", ...variables }))),
    Effect.mapError((error) => String(error))
  )

describe("kafkaConfig", () => {
  it.effect("refuses a linger as long as the append timeout: an idle partition's appends would never be sent", () =>
    Effect.gen(function* () {
      const refused = yield* read({ KAFKA_PRODUCER_LINGER_MS: "10000", KAFKA_APPEND_TIMEOUT: "10 seconds" }).pipe(
        Effect.flip
      )
      assert.include(refused, "KAFKA_PRODUCER_LINGER_MS (10000 ms) must be shorter than KAFKA_APPEND_TIMEOUT")
      const accepted = yield* read({ KAFKA_PRODUCER_LINGER_MS: "5", KAFKA_APPEND_TIMEOUT: "10 seconds" })
      assert.strictEqual(accepted.producerLingerMs, 5)
    })
  )

  it.effect.each([
    ["KAFKA_PRODUCER_LINGER_MS", "-1"],
    ["KAFKA_CONSUMER_PARTITIONS_IN_FLIGHT", "0"],
    ["KAFKA_CONSUMER_PARTITIONS_IN_FLIGHT", "1001"],
    ["KAFKA_CONSUMER_MAX_BYTES_PER_PARTITION", "1000"]
  ])("refuses %s=%s, naming the range", ([name, value]) =>
    Effect.gen(function* () {
      const refused = yield* read({ [name!]: value! }).pipe(Effect.flip)
      assert.include(refused, `${name} must be between`)
      assert.include(refused, `got ${value}`)
    })
  )
})
