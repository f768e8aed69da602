// The end-to-end benchmark's table and its targets, as printed (Markdown, for the README).

import type { DeliveryResult } from "./delivery.ts"
import type { PhaseResult } from "./phase.ts"
import type { Usage } from "./proc.ts"
import type { Latencies } from "./stores.ts"

const thousands = (value: number) => (Number.isFinite(value) ? Math.round(value).toLocaleString("en-US") : "–")
const ms = (value: number) =>
  Number.isFinite(value) ? (value < 10 ? value.toFixed(1) : Math.round(value).toLocaleString("en-US")) : "–"
const latency = (l: Latencies) => `${ms(l.p50)} / ${ms(l.p99)}${l.missing > 0 ? ` (${l.missing} unseen)` : ""}`
const short: Record<string, string> = {
  receiver: "recv",
  processor: "proc",
  notifier: "notif",
  deliverer: "deliv",
  gateway: "gw",
  "raw receiver": "recv",
  "raw consumer": "cons",
  kafka: "kafka",
  cassandra: "cass",
  postgres: "pg"
}
const perProcess = (
  result: PhaseResult,
  pick: (usage: { cpuSeconds: number; peakRssMb: number }) => number,
  digits: number
) =>
  Object.entries(result.usage)
    .map(([name, usage]) => `${short[name] ?? name} ${pick(usage).toFixed(digits)}`)
    .join(", ")

const losses = (result: PhaseResult) => {
  const refused = Object.entries(result.refused)
    .map(([status, count]) => `${count}×${status}`)
    .join(" ")
  const alerts =
    result.system === "dexmon"
      ? `${result.distinctAlerts}/${result.expectedAlerts} episodes${result.alertRows !== result.distinctAlerts ? `, ${result.alertRows - result.distinctAlerts} dup rows` : ""}`
      : `${result.distinctAlerts}/${result.expectedAlerts} low rows`
  return `lost ${result.lost}, changed ${result.changedReadings}; ${alerts}${refused === "" ? "" : `; refused ${refused}`}${result.errors > 0 ? `; ${result.errors} errors` : ""}`
}

export const printReport = (
  results: ReadonlyArray<PhaseResult>,
  lifetimePeaks: Record<string, number>,
  machine: string,
  delivery: (DeliveryResult & { readonly usage: Record<string, Usage> }) | undefined
) => {
  const lines = [
    "",
    `Machine: ${machine}`,
    "",
    "| phase | pipeline | readings/s accepted | ratio | POST p50 / p99 ms | stored p50 / p99 ms | alert p50 / p99 ms | all stored after s | stored/s | CPU s per process | peak RSS MB per process | loss check |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |"
  ]
  for (const result of results) {
    const other = results.find((r) => r.phase === result.phase && r.system !== result.system)
    const ratio =
      result.system === "dexmon" && other !== undefined
        ? (result.readingsPerSecond / other.readingsPerSecond).toFixed(2)
        : ""
    const phase =
      result.offeredRate === undefined ? result.phase : `${result.phase} (${result.offeredRate} req/s offered)`
    lines.push(
      `| ${phase} | ${result.system === "dexmon" ? "DexMon" : "raw"} | ${thousands(result.readingsPerSecond)} | ${ratio} | ` +
        `${ms(result.postP50)} / ${ms(result.postP99)} | ${latency(result.stored)} | ${latency(result.alert)} | ` +
        `${result.drainSeconds.toFixed(1)} | ${thousands(result.acceptedReadings / (result.seconds + result.drainSeconds))} | ${perProcess(result, (u) => u.cpuSeconds, 1)} | ${perProcess(result, (u) => u.peakRssMb, 0)} | ${losses(result)} |`
    )
  }
  if (delivery !== undefined)
    lines.push(
      "",
      `Deliverer: ${delivery.endpoints} endpoints. Backlog (decided before the deliverer started): ${delivery.backlog.told} of ${delivery.endpoints} episodes told, ` +
        `${delivery.backlog.deliveries} deliveries (${delivery.backlog.received} requests, ${delivery.backlog.duplicates} repeated) in ${delivery.backlog.seconds.toFixed(1)} s ` +
        `from the deliverer's start: ${thousands(delivery.backlog.deliveriesPerSecond)} deliveries/s. Live: ${delivery.live.told} of ${delivery.endpoints} told, ` +
        `episode stored → its first webhook received p50 ${ms(delivery.live.latencyP50)} ms, p99 ${ms(delivery.live.latencyP99)} ms. ` +
        `CPU s over the phase: ${Object.entries(delivery.usage)
          .map(([name, usage]) => `${short[name] ?? name} ${usage.cpuSeconds.toFixed(1)}`)
          .join(", ")}`
    )
  lines.push(
    "",
    `Lifetime peak RSS (VmHWM), MB: ${Object.entries(lifetimePeaks)
      .map(([name, mb]) => `${name} ${mb.toFixed(0)}`)
      .join(", ")}`
  )

  const find = (phase: string, system: string) => results.find((r) => r.phase === phase && r.system === system)
  const ratioOf = (phase: string) => {
    const d = find(phase, "dexmon")
    const r = find(phase, "raw")
    return d === undefined || r === undefined ? Number.NaN : d.readingsPerSecond / r.readingsPerSecond
  }
  const open = find("open50", "dexmon")
  const dexmonPeaks = Object.entries(lifetimePeaks).filter(([name]) => !name.startsWith("raw"))
  const ran = (phase: string) => find(phase, "dexmon") !== undefined
  // `undefined`: the phases the target needs were not run (BENCH_PHASES), so it is neither met nor missed.
  const targets: Array<[string, boolean | undefined, string]> = [
    [
      "DexMon/raw >= 0.8, single posts",
      ran("single") ? ratioOf("single") >= 0.8 : undefined,
      ratioOf("single").toFixed(2)
    ],
    [
      "DexMon/raw >= 0.8, batches of 100",
      ran("batch100") ? ratioOf("batch100") >= 0.8 : undefined,
      ratioOf("batch100").toFixed(2)
    ],
    [
      "single posts >= 1,000 readings/s",
      ran("single") ? (find("single", "dexmon")?.readingsPerSecond ?? 0) >= 1_000 : undefined,
      thousands(find("single", "dexmon")?.readingsPerSecond ?? Number.NaN)
    ],
    [
      "batches of 100 >= 10,000 readings/s",
      ran("batch100") ? (find("batch100", "dexmon")?.readingsPerSecond ?? 0) >= 10_000 : undefined,
      thousands(find("batch100", "dexmon")?.readingsPerSecond ?? Number.NaN)
    ],
    [
      "open loop at 50 %: POST p99 < 100 ms",
      open === undefined ? undefined : open.postP99 < 100,
      `${ms(open?.postP99 ?? Number.NaN)} ms`
    ],
    [
      "open loop at 50 %: alert stored p99 < 1 s",
      open === undefined ? undefined : open.alert.p99 < 1_000 && open.alert.missing === 0,
      `${ms(open?.alert.p99 ?? Number.NaN)} ms`
    ],
    [
      "peak RSS < 200 MB per service",
      dexmonPeaks.every(([, mb]) => mb < 200),
      dexmonPeaks.map(([name, mb]) => `${name} ${mb.toFixed(0)}`).join(", ")
    ],
    [
      "every accepted reading stored once, every episode once, every phase",
      results.length === 0
        ? undefined
        : results.every(
            (r) =>
              r.lost === 0 &&
              r.changedReadings === 0 &&
              (r.system === "raw" || (r.distinctAlerts === r.expectedAlerts && r.alertRows === r.distinctAlerts))
          ),
      results
        .filter((r) => r.system === "dexmon")
        .map((r) => `${r.phase}: lost ${r.lost}, episodes ${r.distinctAlerts}/${r.expectedAlerts}`)
        .join("; ")
    ]
  ]
  lines.push("", "Targets:")
  for (const [name, met, value] of targets)
    lines.push(`- ${met === undefined ? "not measured" : met ? "met" : "MISSED"}: ${name} (${value})`)
  console.log(lines.join("\n"))
}
