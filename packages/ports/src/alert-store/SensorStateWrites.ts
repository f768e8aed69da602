import type { SensorStateRow, SensorStateWrite } from "./AlertStateStore.ts"

/**
 * The writes of a batch in rounds that each name a sensor at most once, in the
 * order given: a batch that writes one sensor twice (the second write expecting
 * the revision the first one makes) applies them one after the other.
 */
export const writeRounds = (
  writes: ReadonlyArray<SensorStateWrite>
): ReadonlyArray<ReadonlyArray<SensorStateWrite>> => {
  const rounds: Array<Array<SensorStateWrite>> = []
  const seen = new Map<string, number>()
  for (const write of writes) {
    const round = seen.get(write.row.sensor_id) ?? 0
    seen.set(write.row.sensor_id, round + 1)
    if (rounds[round] === undefined) rounds[round] = []
    rounds[round].push(write)
  }
  return rounds
}

/**
 * Whether a stored row is exactly what this write makes: then the write went
 * through before (a retry after a lost acknowledgement, which a lightweight
 * transaction's timeout can leave unknown) and counts as written, not as a conflict.
 */
export const isThisWrite = (stored: SensorStateRow, write: SensorStateWrite): boolean =>
  stored.revision === write.expected_revision + 1 &&
  stored.user_id === write.row.user_id &&
  stored.log_partition === write.row.log_partition &&
  stored.state === write.row.state &&
  stored.check_at === write.row.check_at
