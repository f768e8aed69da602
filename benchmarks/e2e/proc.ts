// CPU and memory of the processes under test, read from /proc as the kernel counts them: user plus
// system CPU seconds (fields 14 and 15 of /proc/<pid>/stat), the resident set (VmRSS) sampled while a
// phase runs and the kernel's own lifetime peak (VmHWM).
import { execFileSync } from "node:child_process"
import { readFileSync } from "node:fs"

const clockTicks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100

const statFields = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
  // The command name may hold spaces: count the fields after its closing parenthesis (the 3rd field on).
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")
}

export const cpuSecondsOf = (pid: number): number => {
  try {
    const fields = statFields(pid)
    return (Number(fields[11]) + Number(fields[12])) / clockTicks
  } catch {
    return 0
  }
}

const statusKb = (pid: number, field: "VmRSS" | "VmHWM") => {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"))
    return Number(match?.[1] ?? 0)
  } catch {
    return 0
  }
}

/** A process (or a group of them, such as a postmaster's backends) measured as one. */
export interface Measured {
  readonly name: string
  readonly pids: () => ReadonlyArray<number>
}

export interface Usage {
  readonly cpuSeconds: number
  /**
   * The largest resident set sampled of any one process of the group, MB (PostgreSQL's backends share
   * its buffers, which a sum would count once per backend).
   */
  readonly peakRssMb: number
}

/**
 * Measures a window: CPU seconds used by each group between `start` and `stop` (a process that
 * appeared in between counts from zero) and the peak resident set sampled every 100 ms.
 */
export const measureWindow = (groups: ReadonlyArray<Measured>) => {
  const cpuAt = (group: Measured) => new Map(group.pids().map((pid) => [pid, cpuSecondsOf(pid)]))
  const before = groups.map(cpuAt)
  const peaks = groups.map(() => 0)
  const sample = () =>
    groups.forEach((group, i) => {
      const kb = group.pids().reduce((largest, pid) => Math.max(largest, statusKb(pid, "VmRSS")), 0)
      peaks[i] = Math.max(peaks[i]!, kb)
    })
  sample()
  const timer = setInterval(sample, 100)
  return {
    stop: (): Record<string, Usage> => {
      clearInterval(timer)
      sample()
      return Object.fromEntries(
        groups.map((group, i) => {
          let cpu = 0
          for (const [pid, seconds] of cpuAt(group)) cpu += seconds - (before[i]!.get(pid) ?? 0)
          return [group.name, { cpuSeconds: cpu, peakRssMb: peaks[i]! / 1024 }]
        })
      )
    }
  }
}

/** The kernel's lifetime peak resident set of a process (VmHWM), MB. */
export const lifetimePeakMb = (pid: number) => statusKb(pid, "VmHWM") / 1024
