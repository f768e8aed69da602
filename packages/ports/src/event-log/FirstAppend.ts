import type { EventPosition } from "@dexmon/domain"
import type { ConsumerRecord } from "./EventLog.ts"

/**
 * The header that carries where a record was first appended (`<partition>/<offset>`), set when it is
 * dead-lettered and kept by a replay: a replayed event keeps its place in the order of acceptance
 * that decides which of two values at one key is the later (the conflict rule's `isLaterEvent`).
 */
export const FIRST_APPEND_HEADER = "dexmon-first-append"

const positionPattern = /^(\d{1,9})\/(\d{1,18})$/

/** Where `record` was first appended: the position its header carries, or else its own. */
export const firstAppendPosition = (record: ConsumerRecord): EventPosition => {
  const carried = positionPattern.exec(record.headers[FIRST_APPEND_HEADER] ?? "")
  return carried === null
    ? { partition: record.partition, offset: record.offset }
    : { partition: Number(carried[1]), offset: Number(carried[2]) }
}

/** The header value for a record about to be re-appended elsewhere: its first position, kept. */
export const firstAppendHeader = (record: ConsumerRecord): string => {
  const { partition, offset } = firstAppendPosition(record)
  return `${partition}/${offset}`
}
