import { assert, describe, it } from "@effect/vitest"
import { backoffWindow, FIRST_RETRY, MAX_GAP, nextAttemptAt, parseRetryAfter } from "../src/RetrySchedule.ts"

/** mulberry32: a small seeded generator, so every run draws the same gaps. */
const seeded = (seed: number) => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

const DAY = 24 * 60 * 60_000
const T0 = Date.UTC(2026, 10, 30, 12, 0, 0)

/** The gaps of one delivery that fails every attempt, until the budget ends it. */
const gapsUntilExhausted = (random: () => number, budget = DAY, retryAfter?: number) => {
  const gaps: Array<number> = []
  let now = T0
  for (let attempt = 1; ; attempt++) {
    const next = nextAttemptAt({ attempt, now, dueAt: T0, random, budget, retryAfter })
    if (next === "exhausted") return { gaps, lastAttemptAt: now }
    gaps.push(next - now)
    now = next
  }
}

describe("nextAttemptAt", () => {
  it("retries first after 1 to 5 seconds, across the whole draw", () => {
    const random = seeded(1)
    for (let i = 0; i < 1_000; i++) {
      const gap = (nextAttemptAt({ attempt: 1, now: T0, dueAt: T0, random, budget: DAY }) as number) - T0
      assert.isTrue(gap >= FIRST_RETRY.min && gap <= FIRST_RETRY.max, `${gap}`)
    }
    assert.strictEqual(nextAttemptAt({ attempt: 1, now: T0, dueAt: T0, random: () => 0, budget: DAY }), T0 + 1_000)
    assert.strictEqual(nextAttemptAt({ attempt: 1, now: T0, dueAt: T0, random: () => 1, budget: DAY }), T0 + 5_000)
  })

  it("doubles the window per attempt up to the 10-minute cap", () => {
    const expected = [
      [1, 1_000, 5_000],
      [2, 5_000, 10_000],
      [3, 10_000, 20_000],
      [4, 20_000, 40_000],
      [5, 40_000, 80_000],
      [6, 80_000, 160_000],
      [7, 160_000, 320_000],
      [8, 300_000, 600_000],
      [9, 300_000, 600_000],
      [1_000, 300_000, 600_000]
    ]
    for (const [attempt, min, max] of expected) {
      assert.deepStrictEqual(backoffWindow(attempt!), { min, max }, `attempt ${attempt}`)
    }
  })

  it("draws gaps that grow until the cap, stay in their window and never exceed 10 minutes (seeded)", () => {
    for (let seed = 1; seed <= 200; seed++) {
      const { gaps } = gapsUntilExhausted(seeded(seed))
      gaps.forEach((gap, index) => {
        const { min, max } = backoffWindow(index + 1)
        assert.isTrue(gap >= Math.floor(min) && gap <= max, `seed ${seed} attempt ${index + 1}: ${gap}`)
        assert.isTrue(gap <= MAX_GAP)
      })
      // Below the cap each window starts where the one before ended: a gap is never shorter than the last.
      for (let index = 1; index < 7; index++) {
        assert.isTrue(gaps[index]! >= gaps[index - 1]!, `seed ${seed}: ${gaps.slice(0, 8).join(", ")}`)
      }
    }
  })

  it("spreads deliveries that failed together instead of retrying them at one instant", () => {
    const gaps = Array.from({ length: 100 }, (_, seed) => gapsUntilExhausted(seeded(seed + 1)).gaps[4]!)
    assert.isTrue(new Set(gaps).size > 90)
    assert.isTrue(Math.max(...gaps) - Math.min(...gaps) > 30_000)
  })

  it("waits at least what Retry-After asks, when that is longer than the backoff", () => {
    const random = seeded(7)
    const gap = (retryAfter: number, attempt = 1) =>
      (nextAttemptAt({ attempt, now: T0, dueAt: T0, random, budget: DAY, retryAfter }) as number) - T0
    assert.strictEqual(gap(120_000), 120_000)
    assert.strictEqual(gap(599_999, 3), 599_999)
    // Shorter than the backoff: the backoff stands.
    const short = gap(500, 3)
    assert.isTrue(short >= 10_000 && short <= 20_000, `${short}`)
    assert.isTrue(gap(0) >= 1_000)
  })

  it("honours Retry-After only up to the cap", () => {
    const random = seeded(3)
    for (const retryAfter of [MAX_GAP + 1, 60 * 60_000, DAY, Number.MAX_SAFE_INTEGER]) {
      const next = nextAttemptAt({ attempt: 2, now: T0, dueAt: T0, random, budget: DAY, retryAfter })
      assert.strictEqual(next, T0 + MAX_GAP)
    }
  })

  it("ends with exhausted once the next attempt would fall after the budget", () => {
    const { gaps, lastAttemptAt } = gapsUntilExhausted(seeded(11))
    assert.isTrue(lastAttemptAt <= T0 + DAY)
    // The seven windows below the cap take at most 635 s; after them one attempt every 5 to 10 minutes fills the day.
    assert.isTrue(gaps.length >= 7 + Math.floor((DAY - 635_000) / MAX_GAP), `${gaps.length}`)
    assert.isTrue(gaps.length <= 7 + Math.ceil(DAY / (MAX_GAP / 2)), `${gaps.length}`)
    // A short budget ends sooner.
    assert.strictEqual(gapsUntilExhausted(seeded(11), 60_000).gaps.length <= 5, true)
  })

  it("allows an attempt exactly at the end of the budget, not one after it", () => {
    const at = (now: number) => nextAttemptAt({ attempt: 1, now, dueAt: T0, random: () => 0, budget: DAY })
    assert.strictEqual(at(T0 + DAY - 1_000), T0 + DAY)
    assert.strictEqual(at(T0 + DAY - 999), "exhausted")
    // Retry-After cannot stretch the budget either.
    const asked = nextAttemptAt({
      attempt: 1,
      now: T0 + DAY - 60_000,
      dueAt: T0,
      random: () => 0,
      budget: DAY,
      retryAfter: 120_000
    })
    assert.strictEqual(asked, "exhausted")
  })

  it("counts the budget from when the delivery was first due, not from the last failure", () => {
    const late = nextAttemptAt({ attempt: 3, now: T0 + DAY - 5_000, dueAt: T0, random: () => 0, budget: DAY })
    assert.strictEqual(late, "exhausted")
    const fresh = nextAttemptAt({ attempt: 3, now: T0 + DAY - 5_000, dueAt: T0 + 60_000, random: () => 0, budget: DAY })
    assert.strictEqual(fresh, T0 + DAY + 5_000)
  })
})

describe("parseRetryAfter", () => {
  const now = Date.UTC(2026, 10, 30, 12, 0, 0) // Mon, 30 Nov 2026 12:00:00 GMT

  it.each([
    { header: "120", expected: 120_000 },
    { header: "0", expected: 0 },
    { header: " 5 ", expected: 5_000 },
    { header: "Mon, 30 Nov 2026 12:00:30 GMT", expected: 30_000 },
    { header: "Mon, 30 Nov 2026 11:59:00 GMT", expected: 0 },
    { header: "Tue, 01 Dec 2026 00:00:00 GMT", expected: 12 * 60 * 60_000 },
    { header: "Monday, 30-Nov-26 12:01:00 GMT", expected: 60_000 },
    { header: "Sunday, 06-Nov-94 08:49:37 GMT", expected: 0 },
    { header: "Mon Nov 30 12:00:10 2026", expected: 10_000 },
    { header: "Tue Dec  1 12:00:00 2026", expected: 24 * 60 * 60_000 },
    { header: undefined, expected: undefined },
    { header: "", expected: undefined },
    { header: "-1", expected: undefined },
    { header: "1.5", expected: undefined },
    { header: "soon", expected: undefined },
    { header: "30 Nov 2026 12:00:30", expected: undefined },
    { header: "Mon, 31 Feb 2026 12:00:00 GMT", expected: undefined },
    { header: "Mon, 30 Nov 2026 24:00:00 GMT", expected: undefined },
    { header: "Mon, 30 Nov 2026 12:00:30 UTC", expected: undefined }
  ])("$header → $expected", ({ header, expected }) => {
    assert.strictEqual(parseRetryAfter(header, now), expected)
  })

  it("reads a two-digit year more than 50 years ahead as the past century", () => {
    // 94 → 1994, not 2094; 26 → 2026.
    assert.strictEqual(parseRetryAfter("Sunday, 06-Nov-94 08:49:37 GMT", Date.UTC(1994, 10, 6, 8, 49, 0)), 37_000)
    assert.strictEqual(parseRetryAfter("Friday, 01-Jan-27 00:00:00 GMT", Date.UTC(2026, 11, 31, 23, 59, 0)), 60_000)
  })
})
