import { createHash } from "node:crypto"
import type { EventId, SensorId, SensorLimit, Source, UserId } from "@dexmon/domain"
import type { ArchiveStoreError, ByteRange, ObjectRange, ReadingRecord } from "@dexmon/ports"
import { Effect, Schema } from "effect"
import type { AsyncBuffer, FileMetaData, RowGroup } from "hyparquet"

/**
 * hyparquet and its writer, imported by the first archive object written or read instead of with this module:
 * the gateway and `pnpm start` build the archive's layers, but most of them never touch an object (issue 18:
 * the two cost some 6 MB resident). A failed import is a broken installation, so it is a defect.
 */
let parquetModules: Promise<readonly [typeof import("hyparquet"), typeof import("hyparquet-writer")]> | undefined
const parquet = Effect.promise(() => {
  parquetModules ??= Promise.all([import("hyparquet"), import("hyparquet-writer")])
  return parquetModules
})

/**
 * Bumped when the columns of an archive object change; readers check it. Version 2 added the event that
 * wrote each value and its log position (`event_id`, `event_partition`, `event_offset`), which the
 * conflict rule needs to fold a late event into an archived reading. Version 3 added `sensor_limit`
 * (nullable: `LO` or `HI` for a reading at the sensor's range).
 */
export const ARCHIVE_SCHEMA_VERSION = "3"

/**
 * The version an object without a flagged row is written as: version 2's columns exactly, so the readers of the
 * release before `sensor_limit` (during a rolling upgrade, or after a rollback) still read every such object.
 */
const UNFLAGGED_SCHEMA_VERSION = "2"

/** The versions this reader knows: 1 and 2 are read with what they lack as absent (version 3 added `sensor_limit`). */
const READABLE_VERSIONS = new Set(["1", "2", ARCHIVE_SCHEMA_VERSION])

/**
 * What a version-1 object's rows are taken to be written by: the smallest event id, so a late event of the
 * same source with another value counts as later and replaces the archived value (a version-1 row cannot
 * say which of the two came first, and the late one is the one that was just sent).
 */
export const UNKNOWN_EVENT = "00000000-0000-0000-0000-000000000000" as EventId

export class ArchiveFormatError extends Schema.TaggedError<ArchiveFormatError>()("ArchiveFormatError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

/**
 * The checksum of a sequence of readings: sha256 over one canonical line per
 * row with every column. It names the object and is recomputed from the bytes
 * read back, so it proves that every value of every row survived the trip.
 */
export const checksumOf = (rows: ReadonlyArray<ReadingRecord>): string => {
  const hash = createHash("sha256")
  for (const row of rows) {
    hash.update(
      JSON.stringify([
        row.id,
        row.sensor_id,
        row.user_id,
        row.timestamp,
        row.glucose_value,
        row.source,
        row.version,
        row.etag,
        row.created_at,
        row.updated_at,
        row.event_id,
        row.position?.partition ?? null,
        row.position?.offset ?? null,
        // Only when set, so the rows of objects written before the column existed keep their checksum.
        ...(row.sensor_limit === undefined ? [] : [row.sensor_limit])
      ])
    )
    hash.update("\n")
  }
  return hash.digest("hex")
}

/**
 * Rows per row group. Each row group carries min/max statistics per column, and rows are written in
 * (timestamp, sensor) order, so a read for part of a day or for one sensor (`readMatching`) fetches
 * only the row groups whose statistics can match.
 */
export const ROW_GROUP_ROWS = 2_048

/**
 * Readings as one Parquet file with typed columns: instants as UTC
 * milliseconds (`TIMESTAMP_MILLIS`), the value as a double, the version as an
 * int, the row id as an int64, the rest as UTF-8 strings, in row groups of
 * `ROW_GROUP_ROWS` rows.
 */
export const encodeReadings = Effect.fnUntraced(function* (rows: ReadonlyArray<ReadingRecord>) {
  const [, { parquetWriteBuffer }] = yield* parquet
  const column = <A>(pick: (row: ReadingRecord) => A) => rows.map(pick)
  const flagged = rows.some((row) => row.sensor_limit !== undefined)
  const buffer = parquetWriteBuffer({
    columnData: [
      { name: "id", data: column((row) => BigInt(row.id)), type: "INT64", nullable: false },
      { name: "sensor_id", data: column((row) => row.sensor_id), type: "STRING", nullable: false },
      { name: "user_id", data: column((row) => row.user_id), type: "STRING", nullable: false },
      { name: "timestamp", data: column((row) => new Date(row.timestamp)), type: "TIMESTAMP", nullable: false },
      { name: "glucose_value", data: column((row) => row.glucose_value), type: "DOUBLE", nullable: false },
      { name: "source", data: column((row) => row.source), type: "STRING", nullable: false },
      ...(flagged
        ? [
            {
              name: "sensor_limit",
              data: column((row) => row.sensor_limit ?? null),
              type: "STRING" as const,
              nullable: true
            }
          ]
        : []),
      { name: "version", data: column((row) => row.version), type: "INT32", nullable: false },
      { name: "etag", data: column((row) => row.etag), type: "STRING", nullable: false },
      { name: "created_at", data: column((row) => new Date(row.created_at)), type: "TIMESTAMP", nullable: false },
      { name: "updated_at", data: column((row) => new Date(row.updated_at)), type: "TIMESTAMP", nullable: false },
      { name: "event_id", data: column((row) => row.event_id), type: "STRING", nullable: false },
      {
        name: "event_partition",
        data: column((row) => row.position?.partition ?? null),
        type: "INT32",
        nullable: true
      },
      {
        name: "event_offset",
        data: column((row) => (row.position === undefined ? null : BigInt(row.position.offset))),
        type: "INT64",
        nullable: true
      }
    ],
    rowGroupSize: ROW_GROUP_ROWS,
    kvMetadata: [{ key: "dexmon.schema_version", value: flagged ? ARCHIVE_SCHEMA_VERSION : UNFLAGGED_SCHEMA_VERSION }],
    createdBy: "dexmon archiver"
  })
  return new Uint8Array(buffer)
})

interface ParquetRow {
  readonly id: bigint
  readonly sensor_id: string
  readonly user_id: string
  readonly timestamp: Date
  readonly glucose_value: number
  readonly source: string
  /** Absent before version 3. */
  readonly sensor_limit?: string | null
  readonly version: number
  readonly etag: string
  readonly created_at: Date
  readonly updated_at: Date
  /** Absent in version 1. */
  readonly event_id?: string
  readonly event_partition?: number | null
  readonly event_offset?: bigint | null
}

const toArrayBuffer = (bytes: Uint8Array) =>
  bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer

/** Throws unless the footer names a schema version this reader knows. */
const checkVersion = (metadata: FileMetaData) => {
  const version = metadata.key_value_metadata?.find((kv) => kv.key === "dexmon.schema_version")
  if (version?.value === undefined || !READABLE_VERSIONS.has(version.value)) {
    throw new Error(`archive schema version ${version?.value ?? "(none)"}, expected ${ARCHIVE_SCHEMA_VERSION}`)
  }
}

/** Reads an archive object back into readings, in the order they were written. */
export const decodeReadings = (bytes: Uint8Array) =>
  Effect.flatMap(parquet, ([{ parquetMetadata, parquetReadObjects }]) =>
    Effect.tryPromise({
      try: async () => {
        const file = toArrayBuffer(bytes)
        const metadata = parquetMetadata(file)
        checkVersion(metadata)
        // The footer parsed once: reading it is a good part of the cost of a small object.
        return toRecords((await parquetReadObjects({ file, metadata })) as unknown as ReadonlyArray<ParquetRow>)
      },
      catch: (cause) => new ArchiveFormatError({ message: `not a readable archive object: ${String(cause)}`, cause })
    })
  )

const toRecords = (rows: ReadonlyArray<ParquetRow>) =>
  rows.map(
    (row): ReadingRecord => ({
      id: row.id.toString(),
      sensor_id: row.sensor_id as SensorId,
      user_id: row.user_id as UserId,
      timestamp: row.timestamp.getTime(),
      glucose_value: row.glucose_value,
      source: row.source as Source,
      ...(row.sensor_limit === undefined || row.sensor_limit === null
        ? {}
        : { sensor_limit: row.sensor_limit as SensorLimit }),
      version: row.version,
      etag: row.etag,
      created_at: row.created_at.getTime(),
      updated_at: row.updated_at.getTime(),
      event_id: (row.event_id ?? UNKNOWN_EVENT) as EventId,
      position:
        row.event_partition === undefined ||
        row.event_partition === null ||
        row.event_offset === undefined ||
        row.event_offset === null
          ? undefined
          : { partition: row.event_partition, offset: Number(row.event_offset) }
    })
  )

/** Which rows a read wants: `[from, to)` in time, of one sensor or all. */
export interface RowFilter {
  readonly from: number
  readonly to: number
  readonly sensor_id?: string | undefined
}

/**
 * How many bytes of an object's end are fetched first: the footer of an object of a day's readings
 * (13 or 14 columns, a few row groups) fits, so one ranged GET usually answers which row groups can match;
 * an object smaller than this comes whole in that one GET.
 */
export const TAIL_BYTES = 16_384

const PARQUET_MAGIC = 0x31524150 // "PAR1", little-endian

const utf8 = new TextEncoder()

/** A statistics value as epoch milliseconds, if it is an instant (hyparquet converts TIMESTAMP_MILLIS to a Date). */
const millisOf = (value: unknown): number | undefined =>
  value instanceof Date
    ? value.getTime()
    : typeof value === "bigint"
      ? Number(value)
      : typeof value === "number"
        ? value
        : undefined

/** A string statistics value as UTF-8 bytes: Parquet orders strings by unsigned bytes, not UTF-16 units. */
const bytesOf = (value: unknown): Uint8Array | undefined =>
  typeof value === "string" ? utf8.encode(value) : value instanceof Uint8Array ? value : undefined

/**
 * Whether a row group's statistics leave room for a row the filter wants. Missing statistics answer
 * yes; truncated string bounds stay bounds (the writer shortens the minimum and rounds the maximum up).
 */
export const rowGroupMayMatch = (group: RowGroup, filter: RowFilter): boolean => {
  const column = (name: string) => group.columns.find((chunk) => chunk.meta_data?.path_in_schema.join(".") === name)
  const time = column("timestamp")?.meta_data?.statistics
  const first = millisOf(time?.min_value)
  const last = millisOf(time?.max_value)
  if (first !== undefined && first >= filter.to) return false
  if (last !== undefined && last < filter.from) return false
  if (filter.sensor_id !== undefined) {
    const sensors = column("sensor_id")?.meta_data?.statistics
    const wanted = utf8.encode(filter.sensor_id)
    const min = bytesOf(sensors?.min_value)
    const max = bytesOf(sensors?.max_value)
    if (min !== undefined && Buffer.compare(wanted, min) < 0) return false
    if (max !== undefined && Buffer.compare(wanted, max) > 0) return false
  }
  return true
}

/** The byte span of a row group's column chunks in the file. */
const spanOf = (group: RowGroup) => {
  let start = Number.POSITIVE_INFINITY
  let end = 0
  for (const chunk of group.columns) {
    const meta = chunk.meta_data
    if (meta === undefined) continue
    const first = Number(meta.dictionary_page_offset ?? meta.data_page_offset)
    start = Math.min(start, first)
    end = Math.max(end, first + Number(meta.total_compressed_size))
  }
  return { start, end }
}

/** Reads parts of one object: the store's `getRange` for its key. */
export type RangeReader = (range: ByteRange) => Effect.Effect<ObjectRange | undefined, ArchiveStoreError>

/** What `readMatching` read: the rows of the row groups that may match (a superset of the matching rows). */
export interface MatchingRows {
  readonly rows: ReadonlyArray<ReadingRecord>
  /** Row groups read, and row groups the statistics ruled out unread. */
  readonly groupsRead: number
  readonly groupsSkipped: number
}

const formatError = (message: string, cause?: unknown) =>
  new ArchiveFormatError({ message: `not a readable archive object: ${message}`, cause })

/**
 * The rows of an object that may match `filter`, read with ranged GETs: the footer first (the last
 * `TAIL_BYTES`, or more if the footer is longer), then only the byte spans of the row groups whose
 * statistics can match. An object no row group of which can match costs one small GET. `undefined`
 * when the object is gone.
 */
export const readMatching = Effect.fnUntraced(function* (read: RangeReader, filter: RowFilter) {
  const [{ parquetMetadata, parquetReadObjects }] = yield* parquet
  const tail = yield* read({ suffix: TAIL_BYTES })
  if (tail === undefined) return undefined
  const size = tail.size
  if (tail.bytes.byteLength < 12) return yield* formatError(`${size} bytes is too short for Parquet`)
  const end = new DataView(tail.bytes.buffer, tail.bytes.byteOffset, tail.bytes.byteLength)
  const footerLength = end.getUint32(tail.bytes.byteLength - 8, true)
  if (end.getUint32(tail.bytes.byteLength - 4, true) !== PARQUET_MAGIC || footerLength + 8 > size) {
    return yield* formatError("no Parquet footer")
  }
  // Spans of the file held in memory, by offset: the tail first, then the row groups fetched.
  const held: Array<{ readonly offset: number; readonly bytes: Uint8Array }> = []
  if (footerLength + 8 > tail.bytes.byteLength) {
    const whole = yield* read({ suffix: footerLength + 8 })
    if (whole === undefined) return undefined
    held.push({ offset: size - whole.bytes.byteLength, bytes: whole.bytes })
  } else {
    held.push({ offset: size - tail.bytes.byteLength, bytes: tail.bytes })
  }
  const footer = held[0]!.bytes
  const metadata = yield* Effect.try({
    try: () => {
      const parsed = parquetMetadata(toArrayBuffer(footer.subarray(footer.byteLength - footerLength - 8)))
      checkVersion(parsed)
      return parsed
    },
    catch: (cause) => formatError(String(cause), cause)
  })

  const wanted: Array<{ readonly rowStart: number; readonly rowEnd: number; readonly group: RowGroup }> = []
  let rowStart = 0
  for (const group of metadata.row_groups) {
    const rowEnd = rowStart + Number(group.num_rows)
    if (rowGroupMayMatch(group, filter)) wanted.push({ rowStart, rowEnd, group })
    rowStart = rowEnd
  }
  const groupsSkipped = metadata.row_groups.length - wanted.length
  if (wanted.length === 0) return { rows: [], groupsRead: 0, groupsSkipped } satisfies MatchingRows

  const holds = (start: number, stop: number) =>
    held.find((span) => span.offset <= start && stop <= span.offset + span.bytes.byteLength)
  for (const { group } of wanted) {
    const span = spanOf(group)
    if (holds(span.start, span.end) !== undefined) continue
    const part = yield* read({ offset: span.start, length: span.end - span.start })
    if (part === undefined) return undefined
    held.push({ offset: span.start, bytes: part.bytes })
  }
  // hyparquet asks for the column chunks of the row groups it reads, all of them held by now.
  const file: AsyncBuffer = {
    byteLength: size,
    slice: (start, stop = size) => {
      const span = holds(start, stop)
      return span === undefined
        ? Promise.reject(new Error(`bytes ${start}-${stop} were not fetched`))
        : Promise.resolve(toArrayBuffer(span.bytes.subarray(start - span.offset, stop - span.offset)))
    }
  }
  const rows: Array<ReadingRecord> = []
  for (const group of wanted) {
    const read = yield* Effect.tryPromise({
      try: () => parquetReadObjects({ file, metadata, rowStart: group.rowStart, rowEnd: group.rowEnd }),
      catch: (cause) => formatError(String(cause), cause)
    })
    rows.push(...toRecords(read as unknown as ReadonlyArray<ParquetRow>))
  }
  return { rows, groupsRead: wanted.length, groupsSkipped } satisfies MatchingRows
})
