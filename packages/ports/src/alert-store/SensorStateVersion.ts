import type { SensorStateRow } from "./AlertStateStore.ts"

/**
 * A state's version, as the 63 bits of a Cassandra write timestamp: the log
 * position the state covers (40 bits, plus one so the initial position -1 is
 * 0), then how many times the clock changed the state at that position (16
 * bits), then 7 random bits. Ordered by the log first, a state decided from a
 * later record always beats one from an earlier record, whichever writer (a
 * zombie, the partition's new owner) arrives last; at one position the ticks
 * follow each other. Two writers that decided the same records write the same
 * content (the engine is deterministic over the log); the random bits keep two
 * that ticked the same state at the same moment from an exact tie, on which
 * Cassandra would merge their rows cell by cell.
 */
const POSITION_SHIFT = 23n
const SEQUENCE_SHIFT = 7n
const SALT_VALUES = 128

/**
 * The version of a state that covers `position`, written over the stored
 * `stored` (undefined: none): the position's first version, or, when the
 * stored state already covers that position (a clock tick changed it), the
 * next one after it.
 */
export const nextStateVersion = (
  position: number,
  stored: bigint | undefined,
  salt: number = Math.floor(Math.random() * SALT_VALUES)
): bigint => {
  const first = BigInt(position + 1) << POSITION_SHIFT
  const base = stored === undefined || stored < first ? first : ((stored >> SEQUENCE_SHIFT) + 1n) << SEQUENCE_SHIFT
  return base | BigInt(salt % SALT_VALUES)
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
