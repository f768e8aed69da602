import { readFileSync } from "node:fs"
import { Clock, type Duration, Effect, Schedule, Schema } from "effect"

/** /proc/<pid>/status could not be read or named no resident set: the process is gone (or is a zombie). */
export class ProcessMemoryUnavailable extends Schema.TaggedError<ProcessMemoryUnavailable>()(
  "ProcessMemoryUnavailable",
  { pid: Schema.Number, message: Schema.String }
) {}

/** A process's resident set size in MiB, as the kernel counts it (VmRSS of /proc/<pid>/status). Linux only. */
export const residentMiB = Effect.fnUntraced(function* (pid: number) {
  const status = yield* Effect.try({
    try: () => readFileSync(`/proc/${pid}/status`, "utf8"),
    catch: (cause) => new ProcessMemoryUnavailable({ pid, message: String(cause) })
  })
  const kilobytes = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1]
  if (kilobytes === undefined) {
    return yield* new ProcessMemoryUnavailable({ pid, message: "no VmRSS line in /proc/<pid>/status" })
  }
  return Number(kilobytes) / 1024
})

export interface MemorySample {
  /** Clock time of the sample, in milliseconds. */
  readonly at: number
  readonly mib: number
}

/**
 * Samples a process's resident set every `every` in the background, for as long as the scope is open
 * (or until the process is gone). A peak is read afterwards over any window of the samples' times.
 */
export const sampleResidentMemory = Effect.fnUntraced(function* (pid: number, every: Duration.Input) {
  const samples: Array<MemorySample> = []
  yield* Effect.gen(function* () {
    const mib = yield* residentMiB(pid)
    samples.push({ at: yield* Clock.currentTimeMillis, mib })
  }).pipe(Effect.repeat(Schedule.spaced(every)), Effect.ignore, Effect.forkScoped)

  /** The samples taken in [from, to), and the largest of them (0 when there are none). */
  const within = (from: number, to: number) => {
    const taken = samples.filter((sample) => sample.at >= from && sample.at < to)
    return { count: taken.length, peakMiB: taken.reduce((peak, sample) => Math.max(peak, sample.mib), 0) }
  }
  return { within }
})
