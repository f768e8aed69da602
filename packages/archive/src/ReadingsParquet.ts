import { createHash } from "node:crypto"
import type { EventId, SensorId, Source, UserId } from "@dexmon/domain"
import type { ReadingRecord } from "@dexmon/ports"
import { Effect, Schema } from "effect"
import { parquetMetadata, parquetReadObjects } from "hyparquet"
import { parquetWriteBuffer } from "hyparquet-writer"

/**
 * Bumped when the columns of an archive object change; readers check it. Version 2 added the event that
 * wrote each value and its log position (`event_id`, `event_partition`, `event_offset`), which the
 * conflict rule needs to fold a late event into an archived reading.
 */
export const ARCHIVE_SCHEMA_VERSION = "2"

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
        row.position?.offset ?? null
      ])
    )
    hash.update("\n")
  }
  return hash.digest("hex")
}

/**
 * Readings as one Parquet file with typed columns: instants as UTC
 * milliseconds (`TIMESTAMP_MILLIS`), the value as a double, the version as an
 * int, the row id as an int64, the rest as UTF-8 strings. One row group per
 * object: the archiver bounds the rows per object, so a row group never
 * exceeds that bound either.
 */
export const encodeReadings = (rows: ReadonlyArray<ReadingRecord>): Uint8Array => {
  const column = <A>(pick: (row: ReadingRecord) => A) => rows.map(pick)
  const buffer = parquetWriteBuffer({
    columnData: [
      { name: "id", data: column((row) => BigInt(row.id)), type: "INT64", nullable: false },
      { name: "sensor_id", data: column((row) => row.sensor_id), type: "STRING", nullable: false },
      { name: "user_id", data: column((row) => row.user_id), type: "STRING", nullable: false },
      { name: "timestamp", data: column((row) => new Date(row.timestamp)), type: "TIMESTAMP", nullable: false },
      { name: "glucose_value", data: column((row) => row.glucose_value), type: "DOUBLE", nullable: false },
      { name: "source", data: column((row) => row.source), type: "STRING", nullable: false },
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
    rowGroupSize: Math.max(rows.length, 1),
    kvMetadata: [{ key: "dexmon.schema_version", value: ARCHIVE_SCHEMA_VERSION }],
    createdBy: "dexmon archiver"
  })
  return new Uint8Array(buffer)
}

interface ParquetRow {
  readonly id: bigint
  readonly sensor_id: string
  readonly user_id: string
  readonly timestamp: Date
  readonly glucose_value: number
  readonly source: string
  readonly version: number
  readonly etag: string
  readonly created_at: Date
  readonly updated_at: Date
  /** Absent in version 1. */
  readonly event_id?: string
  readonly event_partition?: number | null
  readonly event_offset?: bigint | null
}

/** Reads an archive object back into readings, in the order they were written. */
export const decodeReadings = (bytes: Uint8Array) =>
  Effect.tryPromise({
    try: async () => {
      const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer
      const version = parquetMetadata(file).key_value_metadata?.find((kv) => kv.key === "dexmon.schema_version")
      if (version?.value !== ARCHIVE_SCHEMA_VERSION && version?.value !== "1") {
        throw new Error(`archive schema version ${version?.value ?? "(none)"}, expected ${ARCHIVE_SCHEMA_VERSION}`)
      }
      const rows = (await parquetReadObjects({ file })) as unknown as ReadonlyArray<ParquetRow>
      return rows.map(
        (row): ReadingRecord => ({
          id: row.id.toString(),
          sensor_id: row.sensor_id as SensorId,
          user_id: row.user_id as UserId,
          timestamp: row.timestamp.getTime(),
          glucose_value: row.glucose_value,
          source: row.source as Source,
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
    },
    catch: (cause) => new ArchiveFormatError({ message: `not a readable archive object: ${String(cause)}`, cause })
  })
