import { createHash } from "node:crypto"
import { EventId, SensorId, UserId } from "@dexmon/domain"
import type { ReadingRecord } from "@dexmon/ports"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { parquetMetadata } from "hyparquet"
import { parquetWriteBuffer } from "hyparquet-writer"
import { checksumOf, decodeReadings, encodeReadings } from "../src/index.ts"

const t0 = Date.UTC(2026, 7, 1, 8)
const row = (n: number, extra: Partial<ReadingRecord> = {}): ReadingRecord => ({
  id: String(1000 + n),
  sensor_id: SensorId.make("parquet-sensor"),
  user_id: UserId.make("parquet-user"),
  timestamp: t0 + n * 300_000,
  glucose_value: 100 + n,
  source: "SENSOR",
  version: 1,
  etag: `etag-${n}`,
  created_at: t0 + n * 300_000 + 1_000,
  updated_at: t0 + n * 300_000 + 1_000,
  event_id: EventId.make(`01900000-0000-7000-8000-${n.toString(16).padStart(12, "0")}`),
  position: { partition: 3, offset: 40 + n },
  ...extra
})

/** An object exactly as the archiver wrote it before `sensor_limit` (schema version 2): its 13 columns. */
const versionTwoObject = (rows: ReadonlyArray<ReadingRecord>) =>
  new Uint8Array(
    parquetWriteBuffer({
      columnData: [
        { name: "id", data: rows.map((r) => BigInt(r.id)), type: "INT64", nullable: false },
        { name: "sensor_id", data: rows.map((r) => r.sensor_id), type: "STRING", nullable: false },
        { name: "user_id", data: rows.map((r) => r.user_id), type: "STRING", nullable: false },
        { name: "timestamp", data: rows.map((r) => new Date(r.timestamp)), type: "TIMESTAMP", nullable: false },
        { name: "glucose_value", data: rows.map((r) => r.glucose_value), type: "DOUBLE", nullable: false },
        { name: "source", data: rows.map((r) => r.source), type: "STRING", nullable: false },
        { name: "version", data: rows.map((r) => r.version), type: "INT32", nullable: false },
        { name: "etag", data: rows.map((r) => r.etag), type: "STRING", nullable: false },
        { name: "created_at", data: rows.map((r) => new Date(r.created_at)), type: "TIMESTAMP", nullable: false },
        { name: "updated_at", data: rows.map((r) => new Date(r.updated_at)), type: "TIMESTAMP", nullable: false },
        { name: "event_id", data: rows.map((r) => r.event_id), type: "STRING", nullable: false },
        {
          name: "event_partition",
          data: rows.map((r) => r.position?.partition ?? null),
          type: "INT32",
          nullable: true
        },
        {
          name: "event_offset",
          data: rows.map((r) => (r.position === undefined ? null : BigInt(r.position.offset))),
          type: "INT64",
          nullable: true
        }
      ],
      kvMetadata: [{ key: "dexmon.schema_version", value: "2" }]
    })
  )

/** The checksum as version 2 computed it: one line per row, its 13 columns. */
const versionTwoChecksum = (rows: ReadonlyArray<ReadingRecord>) => {
  const hash = createHash("sha256")
  for (const r of rows) {
    hash.update(
      JSON.stringify([
        r.id,
        r.sensor_id,
        r.user_id,
        r.timestamp,
        r.glucose_value,
        r.source,
        r.version,
        r.etag,
        r.created_at,
        r.updated_at,
        r.event_id,
        r.position?.partition ?? null,
        r.position?.offset ?? null
      ])
    )
    hash.update("\n")
  }
  return hash.digest("hex")
}

/** The schema version an object's footer names, and its columns. */
const footerOf = (bytes: Uint8Array) => {
  const metadata = parquetMetadata(
    bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer
  )
  return {
    version: metadata.key_value_metadata?.find((kv) => kv.key === "dexmon.schema_version")?.value,
    columns: metadata.schema.slice(1).map((element) => element.name)
  }
}

describe("archive objects (Parquet)", () => {
  it.effect(
    "are written as version 2, exactly its columns, unless a row is flagged: the release before reads them",
    () =>
      Effect.gen(function* () {
        const plain = footerOf(yield* encodeReadings([row(0), row(1)]))
        const flagged = footerOf(yield* encodeReadings([row(0), row(1, { glucose_value: 39, sensor_limit: "LO" })]))
        assert.deepStrictEqual(plain, footerOf(versionTwoObject([row(0), row(1)])))
        assert.deepStrictEqual(
          [flagged.version, flagged.columns.filter((name) => !plain.columns.includes(name))],
          ["3", ["sensor_limit"]]
        )
      })
  )

  it.effect("keep a reading's sensor limit, and no key for a reading without one", () =>
    Effect.gen(function* () {
      const rows = [
        row(0, { glucose_value: 39, sensor_limit: "LO" }),
        row(1),
        row(2, { glucose_value: 401, sensor_limit: "HI" })
      ]
      const read = yield* decodeReadings(yield* encodeReadings(rows))
      assert.deepStrictEqual(read, rows)
      assert.isFalse("sensor_limit" in read[1]!)
      assert.strictEqual(checksumOf(read), checksumOf(rows))
      assert.notStrictEqual(
        checksumOf([row(0, { glucose_value: 39 })]),
        checksumOf([row(0, { glucose_value: 39, sensor_limit: "LO" })]),
        "the flag is part of what the checksum proves"
      )
    })
  )

  it.effect("written before the flag existed (version 2) still read, and still verify against their checksum", () =>
    Effect.gen(function* () {
      const rows = [row(0), row(1)]
      const read = yield* decodeReadings(versionTwoObject(rows))
      assert.deepStrictEqual(read, rows)
      assert.strictEqual(checksumOf(read), versionTwoChecksum(rows))
    })
  )
})
