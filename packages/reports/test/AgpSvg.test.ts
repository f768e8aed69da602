import { type GlucoseStatistics, glucoseStatisticsOf, type ProfileBin, valueCountsOf } from "@dexmon/statistics"
import { assert, describe, it } from "@effect/vitest"
import { XMLParser, XMLValidator } from "fast-xml-parser"
import { AGP_CHART, renderAgpSvg, xOf, yOf } from "../src/index.ts"

const DAY = 86_400_000
const from = Date.parse("2026-11-16T00:00:00.000Z")
const to = from + 14 * DAY

/** Bin b (of 96) has p50 = 100 + b, and the bands ±10 and ±40 around it; bins 10-13 and 19, 21 hold nothing. */
const profile: ReadonlyArray<ProfileBin | null> = Array.from({ length: 96 }, (_, bin) =>
  (bin >= 10 && bin <= 13) || bin === 19 || bin === 21
    ? null
    : { p5: 60 + bin, p25: 90 + bin, p50: 100 + bin, p75: 110 + bin, p95: 140 + bin }
)

const statistics: GlucoseStatistics = glucoseStatisticsOf({
  counts: valueCountsOf([50, 60, 100, 100, 100, 100, 200, 300]),
  slots: 8,
  from,
  to,
  runs: new Map(),
  units: "mg/dL"
})

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: "",
  isArray: (name) => name === "polygon"
})

interface Element {
  readonly id?: string
  readonly points?: string
  readonly polygon?: ReadonlyArray<{ readonly points: string }>
  readonly polyline?: { readonly points: string } | ReadonlyArray<{ readonly points: string }>
}

const parse = (svg: string) => {
  assert.strictEqual(XMLValidator.validate(svg), true, "well-formed XML")
  const document = parser.parse(svg) as { svg: { g: ReadonlyArray<Element>; rect: ReadonlyArray<Element> } }
  const group = (id: string) => document.svg.g.find((g) => g.id === id)!
  return { document, group }
}

const pointsOf = (points: string) =>
  points.split(" ").map((pair) => {
    const [x, y] = pair.split(",").map(Number)
    return { x: x!, y: y! }
  })

const centre = (bin: number) => xOf((bin + 0.5) * 15)

describe("the AGP picture", () => {
  it("is well-formed SVG whose bands and median sit at the percentiles of each bin, with gaps where no data is", () => {
    const svg = renderAgpSvg({
      from,
      to,
      time_zone: "Europe/Berlin",
      units: "mg/dL",
      bin_minutes: 15,
      profile,
      statistics
    })
    const { group } = parse(svg)
    const outer = group("agp-band-5-95").polygon!
    const inner = group("agp-band-25-75").polygon!
    // Segments: 0-9, 14-18, 20 (alone), 22-95.
    assert.strictEqual(outer.length, 4)
    assert.strictEqual(inner.length, 4)
    const [first, , lone, last] = outer.map((polygon) => pointsOf(polygon.points))
    // The first segment's upper edge runs along p95 of bins 0..9, its lower edge back along p5.
    assert.deepStrictEqual(
      first!.slice(0, 10).map((p) => [p.x, p.y]),
      Array.from({ length: 10 }, (_, bin) => [Math.round(centre(bin) * 10) / 10, Math.round(yOf(140 + bin) * 10) / 10])
    )
    assert.deepStrictEqual(
      first!.slice(10).map((p) => [p.x, p.y]),
      Array.from({ length: 10 }, (_, i) => 9 - i).map((bin) => [
        Math.round(centre(bin) * 10) / 10,
        Math.round(yOf(60 + bin) * 10) / 10
      ])
    )
    // A lone bin shows as a short box at its time of day, between its p5 and p95.
    assert.strictEqual(lone!.length, 4)
    assert.approximately(lone![0]!.x, centre(20) - 2, 0.05)
    assert.approximately(lone![0]!.y, yOf(160), 0.05)
    assert.approximately(lone![3]!.y, yOf(80), 0.05)
    // The last segment ends at the last bin, just before 24:00.
    assert.approximately(last![73]!.x, centre(95), 0.05)
    // The inner band is narrower than the outer one everywhere: p75 below p95 means a larger y.
    const innerFirst = pointsOf(inner[0]!.points)
    for (const [bin, p] of innerFirst.slice(0, 10).entries()) assert.isAbove(p.y, first![bin]!.y)
    const median = group("agp-median").polyline as ReadonlyArray<{ readonly points: string }>
    assert.strictEqual(median.length, 4)
    assert.approximately(pointsOf(median[0]!.points)[5]!.y, yOf(105), 0.05)
  })

  it("has the target range shaded from 70 to 180 and a time-in-ranges bar of the statistics' shares", () => {
    const svg = renderAgpSvg({ from, to, time_zone: "UTC", units: "mg/dL", bin_minutes: 15, profile, statistics })
    const { document } = parse(svg)
    const rect = (id: string) =>
      document.svg.rect.find((r) => r.id === id) as unknown as { y: string; height: string; "data-percent"?: string }
    const target = rect("agp-target")
    assert.approximately(Number(target.y), yOf(180), 0.05)
    assert.approximately(Number(target.y) + Number(target.height), yOf(70), 0.1)
    // 8 readings: 1 below 54, 1 from 54 to 69, 4 in range, 1 high (200), 1 very high (300).
    const heights = ["very_high", "high", "in_range", "low", "very_low"].map((key) => Number(rect(`tir-${key}`).height))
    const full = AGP_CHART.bottom - AGP_CHART.top
    assert.deepStrictEqual(
      heights,
      [1 / 8, 1 / 8, 4 / 8, 1 / 8, 1 / 8].map((share) => Math.round(share * full * 10) / 10)
    )
  })

  it("labels thresholds in the requested units and says when the data are insufficient", () => {
    const mmol = renderAgpSvg({
      from,
      to,
      time_zone: "America/New_York",
      units: "mmol/L",
      bin_minutes: 15,
      profile,
      statistics
    })
    parse(mmol)
    for (const label of [">3.0<", ">3.9<", ">10.0<", ">13.9<"]) assert.include(mmol, label)
    assert.include(mmol, "insufficient")
    // The window's first and last instants as dates in New York: 15 Nov 19:00 to 29 Nov 18:59.
    assert.include(mmol, "15 Nov 2026 – 29 Nov 2026")
    const empty = renderAgpSvg({
      from,
      to,
      time_zone: "UTC",
      units: "mg/dL",
      bin_minutes: 15,
      profile: profile.map(() => null),
      statistics: glucoseStatisticsOf({ counts: [], slots: 0, from, to, runs: new Map(), units: "mg/dL" })
    })
    const { group } = parse(empty)
    assert.isUndefined(group("agp-band-5-95").polygon)
    assert.include(empty, "No readings in this window")
  })
})
