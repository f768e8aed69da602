import type { SensorStateRow } from "./AlertStateStore.ts"

/**
 * A state's version, as the 63 bits of a Cassandra write timestamp: the log
 * position the state covers (40 bits, plus one so the initial position -1 is
 * 0), then a sequence (16 bits) for a state changed again at the position it
 * already covers, then 7 random bits. The notifier decides only records of
 * the log (readings, actions, its clock's ticks), so a state decided from a
 * later record always outranks one from an earlier record, whichever writer
 * (a zombie, the partition's new owner) arrives last, and two writers that
 * decided the same records write the same content (the engine is
 * deterministic over the log). The random bits keep two writers whose
 * contents might still differ (another deployment's rules) from an exact tie,
 * on which Cassandra would merge their rows cell by cell.
 */
const POSITION_SHIFT = 23n
const SEQUENCE_SHIFT = 7n
/** How many values the random bits of a version take. */
export const VERSION_SALT_VALUES = 128

/**
 * The version of a state that covers `position`, written over the stored
 * `stored` (undefined: none), with `salt` (0-127) as its random bits: the
 * position's first version, or, when the stored version is at or past it
 * (a state the engine changed without a record of the log), the next one
 * after the stored.
 */
export const nextStateVersion = (position: number, stored: bigint | undefined, salt: number): bigint => {
  const first = BigInt(position + 1) << POSITION_SHIFT
  const base = stored === undefined || stored < first ? first : ((stored >> SEQUENCE_SHIFT) + 1n) << SEQUENCE_SHIFT
  return base | BigInt(salt % VERSION_SALT_VALUES)
}

/** The log position a version was made for (-1 for one made before versions were positions). */
export const positionOfVersion = (version: bigint): number => Number(version >> POSITION_SHIFT) - 1

/** Of the rows naming one sensor, the one with the highest version (what the store would keep of them). */
export const newestPerSensor = (rows: ReadonlyArray<SensorStateRow>): ReadonlyArray<SensorStateRow> => {
  const newest = new Map<string, SensorStateRow>()
  for (const row of rows) {
    const known = newest.get(row.sensor_id)
    if (known === undefined || known.version < row.version) newest.set(row.sensor_id, row)
  }
  return [...newest.values()]
}
