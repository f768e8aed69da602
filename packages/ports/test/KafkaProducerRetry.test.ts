// kafkajs's own retrier, which its cluster uses to connect a producer and refresh its metadata.
// @ts-expect-error: kafkajs ships no types for its internals
import createRetry from "kafkajs/src/retry/index.js"
import { describe, expect, it, vi } from "vitest"
import { PRODUCER_CLIENT_RETRY } from "../src/event-log/KafkaEventLog.ts"

describe("the producer's Kafka client retry (issue 15: a broker that is back is written to again within 5 s)", () => {
  it("never waits more than a second between two tries, however long the broker is away", async () => {
    vi.useFakeTimers()
    try {
      const waits: Array<number> = []
      const realSetTimeout = globalThis.setTimeout
      const spy = vi.spyOn(globalThis, "setTimeout").mockImplementation(((fn: () => void, ms?: number) => {
        waits.push(ms ?? 0)
        return realSetTimeout(fn, ms)
      }) as typeof setTimeout)
      const retrier = (createRetry as (options: object) => (fn: () => Promise<never>) => Promise<never>)(
        PRODUCER_CLIENT_RETRY
      )
      // Every try fails as a refused connection does (retriable), until the retrier gives up.
      const outcome = retrier(() =>
        Promise.reject(Object.assign(new Error("Connection error: ECONNREFUSED"), { retriable: true }))
      ).catch((error: Error) => error)
      await vi.runAllTimersAsync()
      expect(await outcome).toBeInstanceOf(Error)
      spy.mockRestore()
      expect(waits.length).toBe(PRODUCER_CLIENT_RETRY.retries)
      expect(Math.max(...waits)).toBeLessThanOrEqual(1_000)
    } finally {
      vi.useRealTimers()
    }
  })
})
