import { assert, describe, it } from "@effect/vitest"
import { partitionForKey } from "../src/index.ts"

describe("partitionForKey", () => {
  // Values of Kafka's own Utils.murmur2 for these keys (from Kafka's UtilsTest), made positive as its partitioner does.
  const kafkaMurmur2: ReadonlyArray<readonly [string, number]> = [
    ["21", -973932308],
    ["foobar", -790332482],
    ["a-little-bit-long-string", -985981536],
    ["a-little-bit-longer-string", -1486304829],
    ["lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971],
    ["abc", 479470107]
  ]
  it("places keys where Kafka's default partitioner does", () => {
    for (const [key, hash] of kafkaMurmur2) {
      for (const partitions of [1, 3, 8, 12]) {
        assert.strictEqual(
          partitionForKey(key, partitions),
          (hash & 0x7fffffff) % partitions,
          `${key} over ${partitions}`
        )
      }
    }
  })
})
