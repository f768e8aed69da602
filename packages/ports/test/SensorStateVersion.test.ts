import { assert, describe, it } from "@effect/vitest"
import fc from "fast-check"
import { nextStateVersion, positionOfVersion } from "../src/index.ts"

describe("sensor state versions", () => {
  it("order by log position first, then by the clock ticks at one position", () => {
    const record41 = nextStateVersion(41, undefined, 5)
    const tick1 = nextStateVersion(41, record41, 0)
    const tick2 = nextStateVersion(41, tick1, 127)
    const record42 = nextStateVersion(42, tick2, 0)
    assert.isTrue(record41 < tick1 && tick1 < tick2 && tick2 < record42)
    assert.deepStrictEqual([record41, tick1, tick2, record42].map(positionOfVersion), [41, 41, 41, 42])
    // The initial position (-1, before any record) and a former table's revision are below every record's version.
    assert.isTrue(nextStateVersion(-1, undefined, 127) < nextStateVersion(0, undefined, 0))
    assert.isTrue(12_345n < nextStateVersion(0, undefined, 0))
    assert.strictEqual(positionOfVersion(12_345n), -1)
  })

  it("a next version always outranks the stored one, and a later position outranks any tick of an earlier one", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -1, max: 2 ** 40 - 2 }),
        fc.integer({ min: 0, max: 1_000 }),
        fc.integer({ min: 1, max: 1_000 }),
        fc.array(fc.integer({ min: 0, max: 127 }), { minLength: 2, maxLength: 2 }),
        (position, ticks, ahead, [saltA = 0, saltB = 0]) => {
          let version = nextStateVersion(position, undefined, saltA)
          for (let tick = 0; tick < ticks; tick++) {
            const next = nextStateVersion(position, version, (saltA + tick) % 128)
            if (!(next > version) || positionOfVersion(next) !== position) return false
            version = next
          }
          const later = nextStateVersion(Math.min(position + ahead, 2 ** 40 - 2), version, saltB)
          return position + ahead > 2 ** 40 - 2 || later > version
        }
      )
    )
  })
})
