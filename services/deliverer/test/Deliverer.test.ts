import { assert, describe, it } from "@effect/vitest"
import { nextStepAfter, printable } from "../src/Deliverer.ts"

const HOUR = 3_600_000
const at = (attempt: number, endedAt: number) => ({
  attempt,
  endedAt,
  dueAt: 0,
  budget: 24 * HOUR,
  random: () => 0.5
})

describe("what follows an attempt", () => {
  it("a 2xx is delivered; a final failure is given up with its error", () => {
    assert.deepStrictEqual(nextStepAfter({ outcome: "delivered", status: 200, latencyMs: 3 }, at(1, 10)), {
      state: "DELIVERED"
    })
    assert.deepStrictEqual(
      nextStepAfter({ outcome: "final", status: 404, error: "404 Not Found", latencyMs: 3 }, at(1, 10)),
      { state: "FAILED", error: "404 Not Found" }
    )
  })

  it.each([1_000, 9_000, 60_000])(
    "a retry waits from when the attempt ended (%i ms after it began), 1 to 5 s for the first",
    (endedAt) => {
      const step = nextStepAfter(
        { outcome: "retry", status: null, error: "timed out", latencyMs: endedAt },
        at(1, endedAt)
      )
      assert.strictEqual(step.state, "PENDING")
      if (step.state !== "PENDING") return
      assert.isAtLeast(step.next_attempt_at - endedAt, 1_000)
      assert.isAtMost(step.next_attempt_at - endedAt, 5_000)
    }
  )

  it("a retry that would fall after the budget is given up, naming the last error", () => {
    const step = nextStepAfter(
      { outcome: "retry", status: 503, error: "503 Service Unavailable", latencyMs: 5 },
      at(12, 24 * HOUR - 1_000)
    )
    assert.deepStrictEqual(step, { state: "FAILED", error: "retry budget spent; last: 503 Service Unavailable" })
  })
})

describe("an endpoint's answer as an error text", () => {
  it("keeps text, tabs and newlines; replaces NUL and the other control characters (PostgreSQL refuses NUL)", () => {
    assert.strictEqual(
      printable("500: oops\u0000\u0001\tline\nnext\u007f é"),
      "500: oops\uFFFD\uFFFD\tline\nnext\uFFFD é"
    )
  })
})
