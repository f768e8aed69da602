import { type GlucoseStatistics, type ProfileBin, toUnits, type Units } from "@dexmon/statistics"

const DAY_MS = 86_400_000

/** What one AGP picture shows: the profile of a window by local time of day, and its time in ranges. */
export interface AgpInput {
  readonly from: number
  /** Exclusive. */
  readonly to: number
  readonly time_zone: string
  readonly units: Units
  /** Minutes per bin of `profile` (15: 96 bins a day). */
  readonly bin_minutes: number
  /** Per bin, the percentiles in mg/dL, or null where the window has no reading at that time of day. */
  readonly profile: ReadonlyArray<ProfileBin | null>
  readonly statistics: GlucoseStatistics
}

/**
 * Where the chart is drawn, in SVG user units: a reader of the picture (the tests) maps a value to its height
 * and a bin to its place with `yOf` and `xOf`. The glucose axis runs from 0 to 350 mg/dL as on the standard AGP
 * report; higher values are drawn at its top.
 */
export const AGP_CHART = { left: 70, right: 770, top: 90, bottom: 470, maxMgdl: 350, width: 1000, height: 540 } as const

export const yOf = (mgdl: number): number =>
  AGP_CHART.bottom -
  (Math.min(Math.max(mgdl, 0), AGP_CHART.maxMgdl) / AGP_CHART.maxMgdl) * (AGP_CHART.bottom - AGP_CHART.top)

export const xOf = (minuteOfDay: number): number =>
  AGP_CHART.left + (minuteOfDay / (24 * 60)) * (AGP_CHART.right - AGP_CHART.left)

const escapeXml = (text: string) =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")

const round = (value: number) => Math.round(value * 10) / 10
const point = (x: number, y: number) => `${round(x)},${round(y)}`

/** Runs of consecutive bins with data, so a time of day without readings is a gap, not a line across it. */
const segmentsOf = (profile: ReadonlyArray<ProfileBin | null>) => {
  const segments: Array<Array<{ readonly bin: number; readonly at: ProfileBin }>> = []
  profile.forEach((at, bin) => {
    if (at === null) return
    const last = segments[segments.length - 1]
    const previous = last?.[last.length - 1]
    if (last !== undefined && previous !== undefined && previous.bin === bin - 1) last.push({ bin, at })
    else segments.push([{ bin, at }])
  })
  return segments
}

const formatDay = (instant: number, zone: string) =>
  new Intl.DateTimeFormat("en-GB", { timeZone: zone, day: "numeric", month: "short", year: "numeric" }).format(instant)

const formatNumber = (value: number, digits: number) => value.toFixed(digits)

/** The value of a threshold in the report's units, as its label reads. */
const thresholdLabel = (mgdl: number, units: Units) =>
  units === "mg/dL" ? String(mgdl) : formatNumber(toUnits(mgdl, units), 1)

const RANGES = [
  { key: "very_high", label: (u: Units) => `Very high  >${thresholdLabel(250, u)}`, color: "#e76f51" },
  { key: "high", label: (u: Units) => `High  ${thresholdLabel(181, u)}-${thresholdLabel(250, u)}`, color: "#f4a261" },
  {
    key: "in_range",
    label: (u: Units) => `In range  ${thresholdLabel(70, u)}-${thresholdLabel(180, u)}`,
    color: "#2a9d8f"
  },
  { key: "low", label: (u: Units) => `Low  ${thresholdLabel(54, u)}-${thresholdLabel(69, u)}`, color: "#e63946" },
  { key: "very_low", label: (u: Units) => `Very low  <${thresholdLabel(54, u)}`, color: "#9d0208" }
] as const

/**
 * The standard Ambulatory Glucose Profile (Bergenstal et al. 2013; the international consensus's one-page report)
 * as an SVG: the median, the 25-75 % and 5-95 % bands by local time of day over the target range 70-180 shaded,
 * the time-in-ranges bar beside it, titled with the dates, the zone and the data sufficiency. Self-contained
 * (no script, no external resource), so it can be saved, mailed or embedded as it is.
 */
export const renderAgpSvg = (input: AgpInput): string => {
  const { bin_minutes: binMinutes, profile, statistics, units } = input
  const centre = (bin: number) => xOf((bin + 0.5) * binMinutes)
  const segments = segmentsOf(profile)
  const band = (id: string, upper: keyof ProfileBin, lower: keyof ProfileBin, fill: string) => {
    const polygons = segments.map((segment) => {
      // A lone bin is drawn as wide as its bin, so it shows.
      const xs = segment.length === 1 ? [centre(segment[0]!.bin) - 2, centre(segment[0]!.bin) + 2] : undefined
      const top =
        xs === undefined
          ? segment.map(({ bin, at }) => point(centre(bin), yOf(at[upper])))
          : xs.map((x) => point(x, yOf(segment[0]!.at[upper])))
      const bottom =
        xs === undefined
          ? [...segment].reverse().map(({ bin, at }) => point(centre(bin), yOf(at[lower])))
          : [...xs].reverse().map((x) => point(x, yOf(segment[0]!.at[lower])))
      return `<polygon points="${[...top, ...bottom].join(" ")}"/>`
    })
    return `<g id="${id}" fill="${fill}" stroke="none">${polygons.join("")}</g>`
  }
  const median = segments
    .map((segment) =>
      segment.length === 1
        ? `<polyline points="${point(centre(segment[0]!.bin) - 2, yOf(segment[0]!.at.p50))} ${point(centre(segment[0]!.bin) + 2, yOf(segment[0]!.at.p50))}"/>`
        : `<polyline points="${segment.map(({ bin, at }) => point(centre(bin), yOf(at.p50))).join(" ")}"/>`
    )
    .join("")

  const { left, right, top, bottom } = AGP_CHART
  const hours = Array.from({ length: 9 }, (_, i) => i * 3)
  const xAxis = hours
    .map(
      (hour) =>
        `<line x1="${xOf(hour * 60)}" y1="${top}" x2="${xOf(hour * 60)}" y2="${bottom}" stroke="#e0e0e0"/>` +
        `<text x="${xOf(hour * 60)}" y="${bottom + 20}" text-anchor="middle">${String(hour).padStart(2, "0")}:00</text>`
    )
    .join("")
  const yAxis = [54, 70, 180, 250]
    .map(
      (mgdl) =>
        `<line x1="${left}" y1="${round(yOf(mgdl))}" x2="${right}" y2="${round(yOf(mgdl))}" stroke="${mgdl === 70 || mgdl === 180 ? "#2a9d8f" : "#bdbdbd"}" stroke-dasharray="${mgdl === 70 || mgdl === 180 ? "none" : "4 3"}"/>` +
        `<text x="${left - 8}" y="${round(yOf(mgdl)) + 4}" text-anchor="end">${thresholdLabel(mgdl, units)}</text>`
    )
    .join("")

  // The time-in-ranges bar: very high on top, very low at the bottom, each as tall as its share.
  const barLeft = 820
  const barWidth = 36
  let barY = top
  const bar = RANGES.map(({ key, label, color }) => {
    const share = statistics.time_in_ranges[key].percent
    const height = (share / 100) * (bottom - top)
    const y = barY
    barY += height
    return (
      `<rect id="tir-${key}" x="${barLeft}" y="${round(y)}" width="${barWidth}" height="${round(height)}" fill="${color}" data-percent="${share}"/>` +
      `<text x="${barLeft + barWidth + 10}" y="${round(y + Math.max(height, 14) / 2) + 4}">${escapeXml(label(units))}: ${formatNumber(share, 1)} %</text>`
    )
  }).join("")

  const days = (input.to - input.from) / DAY_MS
  const dates = `${formatDay(input.from, input.time_zone)} – ${formatDay(input.to - 1, input.time_zone)}`
  const sufficiency = statistics.data_sufficient
    ? `CGM active ${formatNumber(statistics.cgm_active_percent, 1)} % (sufficient data)`
    : `CGM active ${formatNumber(statistics.cgm_active_percent, 1)} % (insufficient: the consensus asks for 70 % of 14 days)`
  const summary =
    statistics.mean === null
      ? "No readings in this window"
      : `Mean ${formatNumber(statistics.mean, units === "mg/dL" ? 0 : 1)} ${units} · GMI ${formatNumber(statistics.gmi_percent!, 1)} % · CV ${formatNumber(statistics.coefficient_of_variation!, 1)} %${statistics.variability_high ? " (above 36 %)" : ""}`
  const title = `Ambulatory Glucose Profile, ${dates}`

  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${AGP_CHART.width}" height="${AGP_CHART.height}" viewBox="0 0 ${AGP_CHART.width} ${AGP_CHART.height}" font-family="Helvetica, Arial, sans-serif" font-size="12" fill="#212121">`,
    `<title>${escapeXml(title)}</title>`,
    `<desc>Median, 25-75 % and 5-95 % of ${statistics.readings} SENSOR readings by local time of day in ${escapeXml(input.time_zone)}, ${units}; target range 70-180 mg/dL shaded.</desc>`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="${left}" y="32" font-size="20" font-weight="bold">Ambulatory Glucose Profile</text>`,
    `<text id="agp-subtitle" x="${left}" y="54">${escapeXml(`${dates} · ${formatNumber(days, Number.isInteger(days) ? 0 : 1)} days · ${input.time_zone}`)}</text>`,
    `<text id="agp-sufficiency" x="${left}" y="72" fill="${statistics.data_sufficient ? "#2a9d8f" : "#b00020"}">${escapeXml(sufficiency)}</text>`,
    `<rect id="agp-target" x="${left}" y="${round(yOf(180))}" width="${right - left}" height="${round(yOf(70) - yOf(180))}" fill="#e8f5e9"/>`,
    xAxis,
    band("agp-band-5-95", "p95", "p5", "#c6dbef"),
    band("agp-band-25-75", "p75", "p25", "#6baed6"),
    `<g id="agp-median" fill="none" stroke="#08306b" stroke-width="2.5" stroke-linejoin="round">${median}</g>`,
    yAxis,
    `<rect x="${left}" y="${top}" width="${right - left}" height="${bottom - top}" fill="none" stroke="#757575"/>`,
    `<text x="${left - 50}" y="${top - 8}">${units}</text>`,
    `<text x="${(left + right) / 2}" y="${bottom + 42}" text-anchor="middle">local time of day</text>`,
    `<text x="${barLeft}" y="${top - 8}" font-weight="bold">Time in ranges</text>`,
    bar,
    `<text id="agp-summary" x="${left}" y="${bottom + 62}">${escapeXml(summary)}</text>`,
    `</svg>`,
    ""
  ].join("\n")
}
