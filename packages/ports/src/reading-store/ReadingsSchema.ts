import { Config, Effect, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { ReadingStoreError } from "./ReadingStore.ts"

/**
 * The hot readings' schema, in one place for the readings store and the archive ledger: the two
 * layouts of `glucose_readings` (a TimescaleDB hypertable, or native monthly range partitions), their
 * migrations, the names of their parts, and the advisory-lock keys both sides take.
 */

/** Where the hot readings live: a TimescaleDB hypertable, or a plain PostgreSQL table partitioned by month. */
export const ReadingsBackend = Schema.Literals(["timescale", "postgres"])
export type ReadingsBackend = typeof ReadingsBackend.Type

/** `DEXMON_READINGS_BACKEND`: `timescale`, `postgres`, or `detect` (the default: see `chooseBackend`). */
export const readingsBackendConfig = Config.Literals(
  ["timescale", "postgres", "detect"],
  "DEXMON_READINGS_BACKEND"
).pipe(Config.withDefault("detect"))

/** `DEXMON_CHUNK_INTERVAL` and `DEXMON_COMPRESS_AFTER` (TimescaleDB only), as PostgreSQL intervals. */
export const ReadingsLayoutConfig = Config.all({
  chunkInterval: Config.String("DEXMON_CHUNK_INTERVAL").pipe(Config.withDefault("7 days")),
  compressAfter: Config.String("DEXMON_COMPRESS_AFTER").pipe(Config.withDefault("30 days"))
})

/**
 * The lock (two-key advisory form, first key) that serializes the upsert's routing of a UTC day's events
 * with the archiver's commits for that day: upserts take it shared per day, a commit exclusively. Without it
 * an upsert could see a key still hot, wait on the row the commit is removing, and insert it again after
 * the commit: one reading hot and archived at once.
 */
export const ARCHIVED_DAY_LOCK = 0x64_78_6c_64 // "dxld"

/**
 * The advisory lock key that makes archiver runs exclusive across processes (in `pg_locks`: classid 0,
 * objid this, objsubid 1). Dropping emptied partitions or chunks happens under it.
 */
export const ARCHIVER_LOCK = 0x64_78_61_72 // "dxar"

/**
 * Serializes creating monthly partitions (processors, on demand) with dropping them (the archiver). The
 * key is `hashtext` of a fixed text, as it always was, so processors and archivers of different
 * releases still exclude each other.
 */
export const lockPartitions = (sql: SqlClient.SqlClient) =>
  sql`SELECT pg_advisory_xact_lock(hashtext('glucose_readings partitions'))`

/** The UTC day of an instant, `YYYY-MM-DD`: the unit of the archive and of its lock. */
export const utcDay = (millis: number) => new Date(millis).toISOString().slice(0, 10)

/** A month's partition: `glucose_readings_YYYYMM` (native partitioning only). */
export const monthPartitionName = (start: Date) =>
  `glucose_readings_${start.getUTCFullYear()}${String(start.getUTCMonth() + 1).padStart(2, "0")}`
/** The start and end (exclusive, epoch ms) of a partition named by `monthPartitionName`, if `name` is one. */
export const monthPartitionRange = (name: string): { readonly from: number; readonly to: number } | undefined => {
  const month = /^glucose_readings_(\d{4})(\d{2})$/.exec(name)
  if (month === null) return undefined
  // Date.UTC months are 0-based: the second is the next month.
  return {
    from: Date.UTC(Number(month[1]), Number(month[2]) - 1, 1),
    to: Date.UTC(Number(month[1]), Number(month[2]), 1)
  }
}
export const monthStart = (millis: number) => {
  const date = new Date(millis)
  return new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), 1))
}
export const nextMonth = (start: Date) => new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + 1, 1))

const backendError = (message: string) =>
  new ReadingStoreError({ operation: "choose backend", message, transient: false })

/** What `glucose_readings` is now, if it exists. */
const existingLayout = (sql: SqlClient.SqlClient) =>
  Effect.gen(function* () {
    const [table] = yield* sql<{ kind: string; extension: boolean }>`
      SELECT c.relkind::text AS kind,
        EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') AS extension
      FROM pg_class c WHERE c.oid = to_regclass('glucose_readings')`
    if (table === undefined) return undefined
    if (table.kind === "p") return "postgres" as const
    if (!table.extension) return "plain" as const
    const [hyper] = yield* sql<{ yes: boolean }>`
      SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = 'glucose_readings') AS yes`
    return hyper?.yes === true ? ("timescale" as const) : ("plain" as const)
  })

/**
 * The backend of the readings: the configured one, checked against what the database has; or, with
 * `detect`, the layout `glucose_readings` already has, else TimescaleDB where the extension can be
 * created, else native partitions. A table already laid out the other way is an error, not a migration.
 */
export const chooseBackend = (requested: ReadingsBackend | "detect") =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const existing = yield* existingLayout(sql)
    if (existing === "plain") {
      return yield* backendError("glucose_readings exists but is neither a hypertable nor partitioned")
    }
    const [{ available }] = (yield* sql<{ available: boolean }>`
      SELECT count(*) > 0 AS available FROM pg_available_extensions WHERE name = 'timescaledb'`) as [
      { available: boolean }
    ]
    if (requested === "detect") return existing ?? (available ? "timescale" : "postgres")
    if (existing !== undefined && existing !== requested) {
      return yield* backendError(
        `DEXMON_READINGS_BACKEND=${requested}, but glucose_readings is ${existing === "timescale" ? "a TimescaleDB hypertable" : "partitioned by month"} in this database`
      )
    }
    if (requested === "timescale" && !available) {
      return yield* backendError(
        "DEXMON_READINGS_BACKEND=timescale, but this PostgreSQL has no timescaledb extension (pg_available_extensions)"
      )
    }
    return requested
  }).pipe(
    Effect.catchTag("SqlError", (error) =>
      Effect.fail(new ReadingStoreError({ operation: "choose backend", message: error.message, transient: true }))
    )
  )

/** The migrations of the readings' tables; `0001` lays `glucose_readings` out for `backend`. */
export const readingsMigrations = (backend: ReadingsBackend) => ({
  "0001_glucose_readings": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const layout = yield* ReadingsLayoutConfig
    const timescale = backend === "timescale"
    if (timescale) yield* sql`CREATE EXTENSION IF NOT EXISTS timescaledb`
    yield* sql`CREATE SEQUENCE glucose_readings_id_seq`
    yield* sql`CREATE TABLE glucose_readings (
      id bigint NOT NULL DEFAULT nextval('glucose_readings_id_seq'),
      sensor_id text NOT NULL,
      user_id text NOT NULL,
      "timestamp" timestamptz NOT NULL,
      glucose_value double precision NOT NULL,
      source text NOT NULL CHECK (source IN ('SENSOR', 'MANUAL')),
      version integer NOT NULL,
      etag text NOT NULL,
      content_hash text NOT NULL,
      event_id uuid NOT NULL,
      created_at timestamptz NOT NULL,
      updated_at timestamptz NOT NULL,
      CONSTRAINT glucose_readings_identity UNIQUE (sensor_id, "timestamp")
    ) ${timescale ? sql`` : sql`PARTITION BY RANGE ("timestamp")`}`
    if (timescale) {
      // TimescaleDB: a hypertable on the timestamp, old chunks compressed (segments per sensor).
      yield* sql`SELECT create_hypertable('glucose_readings', 'timestamp', chunk_time_interval => ${layout.chunkInterval}::interval)`
      yield* sql`ALTER TABLE glucose_readings SET (timescaledb.compress, timescaledb.compress_segmentby = 'sensor_id')`
      yield* sql`SELECT add_compression_policy('glucose_readings', ${layout.compressAfter}::interval)`
    }
    yield* sql`CREATE INDEX glucose_readings_by_user ON glucose_readings (user_id, "timestamp", sensor_id)`
    yield* sql`CREATE TABLE glucose_readings_history (
      history_id bigserial PRIMARY KEY,
      id bigint NOT NULL,
      sensor_id text NOT NULL,
      user_id text NOT NULL,
      "timestamp" timestamptz NOT NULL,
      glucose_value double precision NOT NULL,
      source text NOT NULL,
      version integer NOT NULL,
      etag text NOT NULL,
      event_id uuid NOT NULL,
      created_at timestamptz NOT NULL,
      updated_at timestamptz NOT NULL,
      superseded_at timestamptz NOT NULL DEFAULT now(),
      superseded_by_event uuid NOT NULL
    )`
    yield* sql`CREATE INDEX glucose_readings_history_by_key ON glucose_readings_history (sensor_id, "timestamp", version)`
    // The superseded value is copied by the database itself, in the statement that replaces it:
    // no path can change a reading without keeping what it said before.
    yield* sql.unsafe(`CREATE FUNCTION glucose_readings_keep_history() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO glucose_readings_history (id, sensor_id, user_id, "timestamp", glucose_value, source, version,
          etag, event_id, created_at, updated_at, superseded_by_event)
        VALUES (OLD.id, OLD.sensor_id, OLD.user_id, OLD."timestamp", OLD.glucose_value, OLD.source, OLD.version,
          OLD.etag, OLD.event_id, OLD.created_at, OLD.updated_at, NEW.event_id);
        RETURN NULL;
      END $$`)
    yield* sql`CREATE TRIGGER glucose_readings_history AFTER UPDATE ON glucose_readings
      FOR EACH ROW WHEN (OLD.version IS DISTINCT FROM NEW.version) EXECUTE FUNCTION glucose_readings_keep_history()`
  }),
  // Where the event that wrote each reading was first appended to the events log: "later" is decided
  // by that position, not by the receivers' clocks inside the event ids. Rows written before stay
  // NULL and are compared by event id.
  "0002_event_positions": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE glucose_readings ADD COLUMN event_partition integer, ADD COLUMN event_offset bigint`
  }),
  // Late events for archived days (see `ArchiveLedger`): how far each (user, day) is archived, written by
  // the ledger's commit, and the queue of events the upsert keeps out of the hot store because of it.
  "0003_late_events": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE glucose_archived_days (
      user_id text NOT NULL,
      day date NOT NULL,
      archived_through timestamptz NOT NULL,
      PRIMARY KEY (user_id, day)
    )`
    yield* sql`CREATE TABLE glucose_late_events (
      event_id uuid PRIMARY KEY,
      id bigint NOT NULL,
      sensor_id text NOT NULL,
      user_id text NOT NULL,
      "timestamp" timestamptz NOT NULL,
      glucose_value double precision NOT NULL,
      source text NOT NULL CHECK (source IN ('SENSOR', 'MANUAL')),
      event_partition integer,
      event_offset bigint,
      received_at timestamptz NOT NULL
    )`
    yield* sql`CREATE INDEX glucose_late_events_by_user ON glucose_late_events (user_id, "timestamp", sensor_id)`
  }),
  // Readings at the sensor's range (Nightscout's 39 "LO" and 401 "HI"): a nullable flag on the hot rows, their
  // history and the late queue, NULL for every row written before. A nullable column without a default is added
  // without touching a row (TimescaleDB allows it on compressed chunks). No CHECK: PostgreSQL would scan every
  // row under an exclusive lock to validate it, stalling writers on a large table; the values come only through
  // the domain's `SensorLimit`, and a read decodes them with it. The history trigger copies it from now on.
  "0004_sensor_limit": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE glucose_readings ADD COLUMN sensor_limit text`
    yield* sql`ALTER TABLE glucose_readings_history ADD COLUMN sensor_limit text`
    yield* sql`ALTER TABLE glucose_late_events ADD COLUMN sensor_limit text`
    yield* sql.unsafe(`CREATE OR REPLACE FUNCTION glucose_readings_keep_history() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO glucose_readings_history (id, sensor_id, user_id, "timestamp", glucose_value, source, sensor_limit,
          version, etag, event_id, created_at, updated_at, superseded_by_event)
        VALUES (OLD.id, OLD.sensor_id, OLD.user_id, OLD."timestamp", OLD.glucose_value, OLD.source, OLD.sensor_limit,
          OLD.version, OLD.etag, OLD.event_id, OLD.created_at, OLD.updated_at, NEW.event_id);
        RETURN NULL;
      END $$`)
  })
})
