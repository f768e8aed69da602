const DAY_MILLIS = 86_400_000

/** The UTC day of an instant, `YYYY-MM-DD`. */
export const dayOf = (millis: number): string => new Date(millis).toISOString().slice(0, 10)

/** Epoch milliseconds of a UTC day's first instant. */
export const dayStart = (day: string): number => Date.parse(`${day}T00:00:00.000Z`)

export const nextDayStart = (day: string): number => dayStart(day) + DAY_MILLIS

/**
 * Where an object of readings lives: Hive-partitioned by date and user, so
 * analytic engines prune by either, and named by the checksum of its rows, so
 * archiving the same rows again writes the same object.
 */
export const objectKey = (prefix: string, day: string, userId: string, checksum: string): string =>
  `${prefix}/date=${day}/user=${userId}/part-${checksum.slice(0, 32)}.parquet`

/** The manifest of a day: every committed object of that date. A leading `_` keeps Hive readers from scanning it. */
export const manifestKey = (prefix: string, day: string): string => `${prefix}/date=${day}/_manifest.json`
