/**
 * Reference computations the tests check DexMon's figures against, written the plain way and with other means
 * than the code under test (sorting the values, Intl's own formatting), so that a shared mistake is unlikely.
 */

/** The p-th percentile (0-100) by linear interpolation between closest ranks (numpy's default), on sorted values. */
export const referencePercentile = (values: ReadonlyArray<number>, p: number): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const h = (p / 100) * (sorted.length - 1)
  const low = Math.floor(h)
  return sorted[low]! + (h - low) * ((sorted[Math.min(low + 1, sorted.length - 1)] ?? 0) - sorted[low]!)
}

/** The local time of day in `zone` at `instant`, in minutes since midnight, as Intl formats it for a person. */
export const referenceLocalMinute = (instant: number, zone: string): number => {
  const [hour, minute] = new Date(instant)
    .toLocaleTimeString("en-GB", { timeZone: zone, hour12: false, hour: "2-digit", minute: "2-digit" })
    .split(":")
    .map(Number)
  return (hour! % 24) * 60 + minute!
}
