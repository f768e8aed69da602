import { copyFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { AGP_CHART, xOf, yOf } from "@dexmon/reports"
import { DexMonClient } from "@dexmon/sdk"
import {
  eventually,
  makeDexMonProcess,
  openInChromium,
  referenceLocalMinute,
  referencePercentile
} from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect } from "effect"
import { XMLParser, XMLValidator } from "fast-xml-parser"

const MINUTE = 60_000
const DAY = 24 * 60 * MINUTE
const ZONE = "America/New_York"
const iso = (millis: number) => new Date(millis).toISOString()

const localMinute = (instant: number) => referenceLocalMinute(instant, ZONE)

/**
 * Fourteen days every five minutes: a daily curve by New York time of day (high in the local afternoon, low
 * before dawn) plus a spread that differs day to day, so each bin's percentiles are distinct and known.
 */
const fortnight = (to: number) => {
  const readings: Array<{ timestamp: number; glucose_value: number }> = []
  for (let t = to - 14 * DAY; t < to; t += 5 * MINUTE) {
    const minute = localMinute(t)
    const day = Math.floor((t - (to - 14 * DAY)) / DAY)
    const curve = 140 - 70 * Math.cos((2 * Math.PI * (minute - 240)) / 1440)
    readings.push({ timestamp: t, glucose_value: Math.round(curve + ((day * 37) % 60) - 30) })
  }
  return readings
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: "",
  isArray: (name) => name === "polygon"
})

describe("the AGP report over HTTP", () => {
  it.live(
    "fourteen days binned by New York time: bands where the fixture's percentiles put them, rendered by Chromium; bad parameters get 400",
    () =>
      Effect.gen(function* () {
        const dexmon = yield* makeDexMonProcess
        yield* dexmon.start
        const now = yield* Clock.currentTimeMillis
        const to = Math.floor(now / (5 * MINUTE)) * 5 * MINUTE - 10 * MINUTE
        const readings = fortnight(to)
        const svg = yield* Effect.gen(function* () {
          const client = yield* DexMonClient
          for (let i = 0; i < readings.length; i += 1000) {
            yield* client.ingestion.postSensor({
              payload: {
                readings: readings.slice(i, i + 1000).map((r) => ({ ...r, sensor_id: "agp-1" as never }))
              }
            })
          }
          const window = { from: to - 14 * DAY, to }
          yield* eventually(
            client.statistics.get({ query: window }),
            (statistics) => statistics.readings === readings.length,
            { what: "the fortnight stored", every: "100 millis", times: 600 }
          )
          return yield* client.reports.agp({ query: { ...window, tz: ZONE } })
        }).pipe(Effect.provide(DexMonClient.layer({ baseUrl: dexmon.baseUrl, userId: "agp-user" })))

        assert.strictEqual(XMLValidator.validate(svg), true, "well-formed XML")
        const document = parser.parse(svg) as {
          svg: { g: ReadonlyArray<{ id: string; polygon?: ReadonlyArray<{ points: string }> }> }
        }
        const band = (id: string) => document.svg.g.find((g) => g.id === id)!.polygon!
        // Every bin has readings: one polygon per band, upper edge left to right, lower edge back.
        assert.strictEqual(band("agp-band-5-95").length, 1)
        const pointsOf = (id: string) =>
          band(id)[0]!
            .points.split(" ")
            .map((pair) => pair.split(",").map(Number) as [number, number])
        const outer = pointsOf("agp-band-5-95")
        const inner = pointsOf("agp-band-25-75")
        assert.strictEqual(outer.length, 2 * 96)
        const byBin = Array.from({ length: 96 }, () => [] as Array<number>)
        for (const r of readings) byBin[Math.floor(localMinute(r.timestamp) / 15)]!.push(r.glucose_value)
        for (let bin = 0; bin < 96; bin++) {
          const at = (p: number) => yOf(referencePercentile(byBin[bin]!, p))
          const x = xOf(bin * 15 + 7.5)
          assert.approximately(outer[bin]![0], x, 0.06, `bin ${bin} x`)
          assert.approximately(outer[bin]![1], at(95), 0.06, `bin ${bin} p95`)
          assert.approximately(outer[2 * 96 - 1 - bin]![1], at(5), 0.06, `bin ${bin} p5`)
          assert.approximately(inner[bin]![1], at(75), 0.06, `bin ${bin} p75`)
          assert.approximately(inner[2 * 96 - 1 - bin]![1], at(25), 0.06, `bin ${bin} p25`)
        }
        assert.include(svg, "14 days · America/New_York")

        // As a person sees it: Chromium builds the SVG's DOM (no XML error page) and screenshots it.
        const opened = yield* openInChromium("agp-new-york.svg", svg, AGP_CHART)
        assert.include(opened.dom, 'id="agp-band-5-95"')
        assert.notInclude(opened.dom, "This page contains the following errors")
        assert.isAbove(opened.screenshotBytes, 20_000, "a picture, not a blank page")
        // The README shows the screenshot of this run's picture when asked to (DEXMON_UPDATE_README_SCREENSHOT=1).
        if (process.env.DEXMON_UPDATE_README_SCREENSHOT === "1") {
          copyFileSync(opened.screenshot, fileURLToPath(new URL("../../../docs/agp.png", import.meta.url)))
        }

        const refused = [
          { query: `tz=${encodeURIComponent("Mars/Olympus")}`, path: "tz" },
          { query: `tz=${encodeURIComponent("+01:00")}`, path: "tz" },
          { query: "units=mg", path: "units" },
          { query: `from=${iso(to)}&to=${iso(to - DAY)}`, path: "to" },
          { query: `from=${iso(to - 91 * DAY)}&to=${iso(to)}`, path: "from" }
        ]
        for (const { query, path } of refused) {
          const response = yield* Effect.promise(() =>
            fetch(`${dexmon.baseUrl}/api/v1/reports/agp?${query}`, { headers: { "x-user-id": "agp-user" } })
          )
          const answer = (yield* Effect.promise(() => response.json())) as {
            readonly _tag: string
            readonly issues: ReadonlyArray<{ readonly path: string }>
          }
          assert.strictEqual(response.status, 400, `${query}: ${JSON.stringify(answer)}`)
          assert.isTrue(
            answer.issues.some((issue) => issue.path === path),
            `${query}: expected an issue at ${path}, got ${JSON.stringify(answer.issues)}`
          )
        }
      }),
    240_000
  )
})
