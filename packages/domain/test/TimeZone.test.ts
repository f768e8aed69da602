import { assert, describe, it } from "@effect/vitest"
import fc from "fast-check"
import { wallClockAt } from "../src/index.ts"

/** The wall clock as another Intl API writes it (`sv-SE` reads YYYY-MM-DD HH:MM:SS), with the instant's millis. */
const referenceWallClock = (zone: string, instant: number): number => {
  const text = new Date(instant).toLocaleString("sv-SE", { timeZone: zone, hourCycle: "h23" })
  const [date, time] = text.split(" ")
  const [year, month, day] = date!.split("-").map(Number)
  const [hour, minute, second] = time!.split(":").map(Number)
  const millis = ((instant % 1000) + 1000) % 1000
  return Date.UTC(year!, month! - 1, day!, hour!, minute!, second!) + millis
}

// Zones with every kind of clock change: DST by an hour either way (Dublin's winter time is its "DST"), by half
// an hour (Lord Howe), offsets off the hour (Kolkata, Chatham, St John's), Ramadan suspensions (Casablanca).
const ZONES = [
  "UTC",
  "America/New_York",
  "Europe/Dublin",
  "Asia/Kolkata",
  "Australia/Lord_Howe",
  "Pacific/Chatham",
  "America/St_Johns",
  "Africa/Casablanca"
]

describe("wallClockAt", () => {
  it("equals the wall clock Intl writes, at any instant from 1900 to 2100 in zones with every kind of change", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...ZONES),
        fc.integer({ min: Date.UTC(1900, 0, 1), max: Date.UTC(2100, 0, 1) }),
        (zone, instant) => {
          assert.strictEqual(wallClockAt(zone, instant), referenceWallClock(zone, instant), `${zone} ${instant}`)
        }
      ),
      { numRuns: 20_000 }
    )
  })

  it("equals it minute by minute across the clock changes of 2026, where an hour holds two offsets", () => {
    for (const zone of ZONES) {
      for (let instant = Date.UTC(2026, 0, 1); instant < Date.UTC(2027, 0, 1); instant += 6 * 3_600_000) {
        // Every minute of a day where the offset at its ends differs (a clock change inside it).
        const end = instant + 6 * 3_600_000
        if (referenceWallClock(zone, instant) - instant === referenceWallClock(zone, end) - end) continue
        for (let t = instant; t < end; t += 60_000 + 7) {
          assert.strictEqual(wallClockAt(zone, t), referenceWallClock(zone, t), `${zone} ${new Date(t).toISOString()}`)
        }
      }
    }
  })
})
