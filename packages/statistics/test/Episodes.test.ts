import { SensorId } from "@dexmon/domain"
import { assert, describe, it } from "@effect/vitest"
import fc from "fast-check"
import {
  bandOf,
  EPISODE_CONDITIONS,
  type Episode,
  episodesOf,
  joinRuns,
  mergeOverlapping,
  runsOf,
  sensorEpisodesOf,
  sensorRunsOf,
  type TimedValue
} from "../src/index.ts"
import { at, every5, splitSeries, times } from "./fixtures.ts"

const below70 = (readings: ReadonlyArray<TimedValue>) => episodesOf(runsOf(readings), EPISODE_CONDITIONS.below_70)

/** An episode from minute `start` to minute `end` (or open), lasting `minutes`. */
const episode = (start: number, end: number | null, minutes: number): Episode => ({
  start: at(start),
  end: end === null ? null : at(end),
  minutes
})

describe("episodesOf", () => {
  it("ignore a low of two readings", () => {
    // 60 at 0 and 5, then 100 at 10..25: the low lasts until the next reading, 10 - 0 = 10 minutes < 15.
    assert.deepStrictEqual(below70(every5([60, 60, 100, 100, 100, 100])), [])
  })

  it("count a low of three readings, ended by 15 minutes back up", () => {
    // 60 at 0, 5, 10 lasts until the next reading at 15: 15 minutes, an episode from 0.
    // 100 at 15..30 is the last segment, measured reading to reading: 30 - 15 = 15 minutes, so it ends
    // the episode at its first reading, 15. Minutes: 15 - 0.
    assert.deepStrictEqual(below70(every5([...times(3, 60), ...times(4, 100)])), [episode(0, 15, 15)])
  })

  it("keep an episode open when the data ends less than 15 minutes after it came back up", () => {
    // As above with only three readings back up (15..25): at the end of the data the segment lasts
    // 25 - 15 = 10 minutes (rule b), which does not end the episode. Its minutes run to the last reading
    // below 70, at 10.
    assert.deepStrictEqual(below70(every5([...times(3, 60), ...times(3, 100)])), [episode(0, null, 10)])
  })

  it("continue an episode through a recovery shorter than 15 minutes", () => {
    // Low 0..15 (until 20), up 20..25 (until 30: 10 minutes), low 30..45 (until 50), up 50..70 (20 minutes).
    // The short recovery does not end the episode; the long one ends it at 50. Minutes: 50 - 0.
    assert.deepStrictEqual(below70(every5([...times(4, 60), ...times(2, 100), ...times(4, 60), ...times(5, 100)])), [
      episode(0, 50, 50)
    ])
  })

  it("end an episode at a recovery of exactly 15 minutes", () => {
    // Low 0..15 (until 20), up 20..30 (until 35: 15 minutes) ends it at 20; low 35..50 (until 55) opens
    // another, which up 55..75 ends at 55.
    assert.deepStrictEqual(below70(every5([...times(4, 60), ...times(3, 100), ...times(4, 60), ...times(5, 100)])), [
      episode(0, 20, 20),
      episode(35, 55, 20)
    ])
  })

  it("end an episode at the last reading before a data gap", () => {
    // Low 0..20, nothing for 30 minutes, low 50..70, up 75..95.
    // Before the gap: 20 - 0 = 20 minutes, an episode that the gap ends at 20.
    // After it: the low lasts until 75, 25 minutes, an episode the recovery (75..95, 20 minutes) ends at 75.
    const readings = [...every5(times(5, 60)), ...every5(times(5, 60), 50), ...every5(times(5, 100), 75)]
    assert.deepStrictEqual(below70(readings), [episode(0, 20, 20), episode(50, 75, 25)])
  })

  it("leave an episode open when the data ends in it", () => {
    // Up 0..15, low 20..35: the last segment lasts 35 - 20 = 15 minutes, an episode with no end, 15 minutes.
    assert.deepStrictEqual(below70(every5([...times(4, 100), ...times(4, 60)])), [episode(20, null, 15)])
  })

  it("find a below-54 episode inside a below-70 one", () => {
    // 65, 65, 50, 50, 50, 65, 65 at 0..30, then 100 at 35..50.
    const runs = runsOf(every5([65, 65, 50, 50, 50, 65, 65, ...times(4, 100)]))
    // Below 70: 0..30 lasts until 35, ended there by 35..50 (15 minutes up).
    assert.deepStrictEqual(episodesOf(runs, EPISODE_CONDITIONS.below_70), [episode(0, 35, 35)])
    // Below 54: 10..20 lasts until 25 (15 minutes); 65 and 100 are both out of the condition, one segment
    // from 25 to 50 (25 minutes) that ends it at 25.
    assert.deepStrictEqual(episodesOf(runs, EPISODE_CONDITIONS.below_54), [episode(10, 25, 15)])
  })

  it("find an above-250 episode and no low one in it", () => {
    // 200 at 0, 260 at 5..20 (until 25: 20 minutes), 240 at 25..40 (15 minutes): an episode from 5 to 25.
    const runs = runsOf(every5([200, ...times(4, 260), ...times(4, 240)]))
    assert.deepStrictEqual(episodesOf(runs, EPISODE_CONDITIONS.above_250), [episode(5, 25, 20)])
    assert.deepStrictEqual(episodesOf(runs, EPISODE_CONDITIONS.below_70), [])
    assert.deepStrictEqual(episodesOf(runs, EPISODE_CONDITIONS.below_54), [])
  })

  it("find no episodes in no data", () => {
    assert.deepStrictEqual(episodesOf([], EPISODE_CONDITIONS.below_70), [])
  })

  it("give the same episodes for joined runs as for the runs of the whole series", () => {
    fc.assert(
      fc.property(splitSeries, ({ cut, series }) => {
        const joined = joinRuns(runsOf(series.slice(0, cut)), runsOf(series.slice(cut)))
        for (const inCondition of Object.values(EPISODE_CONDITIONS)) {
          assert.deepStrictEqual(episodesOf(joined, inCondition), episodesOf(runsOf(series), inCondition))
        }
      }),
      { numRuns: 500 }
    )
  })

  // Whatever ends an episode (15 minutes out, or a gap after at least 15 minutes of readings), it had
  // lasted 15 minutes; only an episode the data ends in can have fewer (its minutes stop at the last
  // reading in the condition).
  it("give ordered, disjoint episodes that start in the condition, and last 15 minutes when they ended", () => {
    fc.assert(
      fc.property(splitSeries, ({ series }) => {
        for (const inCondition of Object.values(EPISODE_CONDITIONS)) {
          const episodes = episodesOf(runsOf(series), inCondition)
          let previousEnd = Number.NEGATIVE_INFINITY
          for (const { end, minutes, start } of episodes) {
            assert.isAtLeast(start, previousEnd)
            assert.isAtLeast(minutes, end === null ? 0 : 15)
            assert.isTrue(series.some((r) => r.timestamp === start && inCondition(bandOf(r.value))))
            previousEnd = end ?? Number.POSITIVE_INFINITY
          }
        }
      })
    )
  })
})

describe("sensorEpisodesOf", () => {
  // Sensor A low (60) for 30 minutes, then back at 100; sensor B, worn beside it, in range 2 minutes after each.
  const sensorA = every5([...times(6, 60), ...times(4, 100)]).map((r) => ({ ...r, sensor_id: SensorId.make("a") }))
  const sensorB = every5(times(10, 100)).map((r) => ({
    ...r,
    timestamp: r.timestamp + 2 * 60_000,
    sensor_id: SensorId.make("b")
  }))
  const interleaved = [...sensorA, ...sensorB].sort((x, y) => x.timestamp - y.timestamp)

  it("find each sensor's episode in its own series, whatever another sensor worn at the same time reads", () => {
    assert.deepStrictEqual(sensorEpisodesOf(sensorRunsOf(interleaved), EPISODE_CONDITIONS.below_70), [
      { sensor_id: SensorId.make("a"), ...episode(0, 30, 30) }
    ])
    // One series of both sensors' readings: B's 100s cut A's low into 2-minute pieces, and no episode is found.
    assert.deepStrictEqual(below70(interleaved), [])
  })

  it("list several sensors' episodes in order of start", () => {
    const sensorC = every5([...times(2, 100), ...times(4, 50), ...times(4, 100)]).map((r) => ({
      ...r,
      sensor_id: SensorId.make("c")
    }))
    const all = [...sensorC, ...sensorA, ...sensorB].sort((x, y) => x.timestamp - y.timestamp)
    assert.deepStrictEqual(
      sensorEpisodesOf(sensorRunsOf(all), EPISODE_CONDITIONS.below_70).map((item) => [item.sensor_id, item.start]),
      [
        ["a", at(0)],
        ["c", at(10)]
      ]
    )
  })
})

describe("mergeOverlapping", () => {
  const a = SensorId.make("a")
  const b = SensorId.make("b")
  const item = (sensorId: SensorId, start: number, end: number | null, minutes: number) => ({
    sensor_id: sensorId,
    ...episode(start, end, minutes)
  })

  it("make one episode of two sensors' overlapping ones, from the first start to the furthest end", () => {
    // a low from 0 to 30 on a; b, put on at 20, sees it from 20 to 40.
    assert.deepStrictEqual(mergeOverlapping([item(b, 20, 40, 20), item(a, 0, 30, 30)]), [
      { sensor_ids: [a, b], ...episode(0, 40, 40) }
    ])
    // b's is still open at the end of the data, its last reading low at 45: the merged one is open too.
    assert.deepStrictEqual(mergeOverlapping([item(a, 0, 30, 30), item(b, 20, null, 25)]), [
      { sensor_ids: [a, b], ...episode(0, null, 45) }
    ])
    // One contained in the other changes nothing but the sensors.
    assert.deepStrictEqual(mergeOverlapping([item(a, 0, 60, 60), item(b, 10, 20, 10)]), [
      { sensor_ids: [a, b], ...episode(0, 60, 60) }
    ])
  })

  it("keep episodes apart that do not overlap, in order of start", () => {
    assert.deepStrictEqual(mergeOverlapping([item(b, 50, 70, 20), item(a, 0, 30, 30)]), [
      { sensor_ids: [a], ...episode(0, 30, 30) },
      { sensor_ids: [b], ...episode(50, 70, 20) }
    ])
  })

  it("leave one sensor's episodes as they are", () => {
    fc.assert(
      fc.property(splitSeries, ({ series }) => {
        for (const condition of Object.values(EPISODE_CONDITIONS)) {
          const own = episodesOf(runsOf(series), condition)
          assert.deepStrictEqual(
            mergeOverlapping(own.map((e) => ({ sensor_id: a, ...e }))),
            own.map((e) => ({ sensor_ids: [a], ...e }))
          )
        }
      }),
      { numRuns: 300 }
    )
  })
})
