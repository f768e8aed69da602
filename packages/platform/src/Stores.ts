import {
  type ArchiveStore,
  CassandraAlertStateStore,
  CassandraAlertStore,
  Database,
  type EventLog,
  KafkaEventLog,
  LocalFolderArchiveStore,
  PostgresAlertSettingsStore,
  PostgresAlertStateStore,
  PostgresAlertStore,
  PostgresDeliveryOutbox,
  PostgresEventLog,
  PostgresWebhookStore,
  requireEmbeddedAllowed,
  S3ArchiveStore,
  SqlArchiveLedger,
  SqlReadingStore,
  SqlSensorOwnership,
  Topics
} from "@dexmon/ports"
import { Config, Effect, Layer, Option } from "effect"

// The store layers, chosen by configuration. Each real store is selected by its
// connection variable; without it the embedded store is used, except under
// `DEXMON_PROFILE=production`, where a missing variable stops start-up.

/** PostgreSQL: `DATABASE_URL`, or the embedded server under `DEXMON_DATA_DIR`. */
export const SqlClientLive = Database.layerConfig

/** The event log: Kafka when `KAFKA_BROKERS` is set, otherwise the embedded log in PostgreSQL. */
export const EventLogLive = Layer.unwrap(
  Effect.gen(function* () {
    const brokers = yield* Config.option(Config.String("KAFKA_BROKERS"))
    if (Option.isSome(brokers)) return KafkaEventLog.layer as Layer.Layer<EventLog, unknown, Topics>
    yield* requireEmbeddedAllowed("KAFKA_BROKERS")
    return PostgresEventLog.layer.pipe(Layer.provide(SqlClientLive))
  })
).pipe(Layer.provideMerge(Topics.layerConfig))

/**
 * The readings store on `DATABASE_URL` (TimescaleDB or PostgreSQL) or the
 * embedded server, laid out as `DEXMON_READINGS_BACKEND` says (`detect` by
 * default: a hypertable where the timescaledb extension is available). Every
 * SQL layer provides the same `SqlClientLive`, which the layer graph builds
 * once: one pool, one embedded server per process.
 */
export const ReadingStoreLive = SqlReadingStore.layerConfig.pipe(Layer.provide(SqlClientLive))

/**
 * Cassandra when `CASSANDRA_CONTACT_POINTS` is set, otherwise PostgreSQL: the
 * alert stores' choice, with each layer's own errors kept in the result.
 */
const cassandraOrPostgres = <A, ECassandra, EPostgres>(
  cassandraLayer: Layer.Layer<A, ECassandra>,
  postgresLayer: Layer.Layer<A, EPostgres>
) =>
  Layer.unwrap(
    Effect.gen(function* (): Effect.fn.Return<Layer.Layer<A, ECassandra | EPostgres>, Config.ConfigError> {
      const contactPoints = yield* Config.option(Config.String("CASSANDRA_CONTACT_POINTS"))
      if (Option.isSome(contactPoints)) return cassandraLayer
      yield* requireEmbeddedAllowed("CASSANDRA_CONTACT_POINTS")
      return postgresLayer
    })
  )

/** Alerts: Cassandra when `CASSANDRA_CONTACT_POINTS` is set, otherwise a table in PostgreSQL. */
export const AlertStoreLive = cassandraOrPostgres(
  CassandraAlertStore.layer,
  PostgresAlertStore.layer.pipe(Layer.provide(SqlClientLive))
)

/**
 * The alert engine's per-sensor state, beside the alerts: Cassandra when
 * `CASSANDRA_CONTACT_POINTS` is set (on the same client as `AlertStoreLive`, as
 * both layers provide the one `CassandraSession.layer`), otherwise a table in PostgreSQL.
 */
export const AlertStateStoreLive = cassandraOrPostgres(
  CassandraAlertStateStore.layer,
  PostgresAlertStateStore.layer.pipe(Layer.provide(SqlClientLive))
)

/** Archive objects: S3 when `S3_BUCKET` is set, otherwise a local folder (`DEXMON_ARCHIVE_DIR`). */
export const ArchiveStoreLive = Layer.unwrap(
  Effect.gen(function* () {
    const bucket = yield* Config.option(Config.String("S3_BUCKET"))
    if (Option.isSome(bucket)) return S3ArchiveStore.layer as Layer.Layer<ArchiveStore, unknown>
    yield* requireEmbeddedAllowed("S3_BUCKET")
    return LocalFolderArchiveStore.layerConfig
  })
)

/** The archive ledger, beside the readings it removes in the same database. */
export const ArchiveLedgerLive = SqlArchiveLedger.layer.pipe(
  Layer.provideMerge(ReadingStoreLive),
  Layer.provide(SqlClientLive)
)

/** Sensor owners, in the readings database (`DATABASE_URL` or the embedded server). */
export const SensorOwnershipLive = SqlSensorOwnership.layer.pipe(Layer.provide(SqlClientLive))

/**
 * Users' alert settings, in the readings database beside the sensor owners
 * (`DATABASE_URL` or the embedded server): the receiver stamps each reading
 * with the current version, the gateway reads and writes them, and the
 * notifier reads the stamped version, so all three reach the one database.
 */
export const AlertSettingsStoreLive = PostgresAlertSettingsStore.layer.pipe(Layer.provide(SqlClientLive))

/**
 * Users' webhook endpoints and their secrets, in the readings database beside
 * the alert settings (`DATABASE_URL` or the embedded server): the gateway
 * registers them and the deliverer reads them before each attempt.
 */
export const WebhookStoreLive = PostgresWebhookStore.layer.pipe(Layer.provide(SqlClientLive))

/**
 * The webhook delivery outbox, in the same database (`DATABASE_URL` or the
 * embedded server): the queue outlives the deliverer's process, and its
 * claims rest on PostgreSQL's row locks (`FOR UPDATE SKIP LOCKED`).
 */
export const DeliveryOutboxLive = PostgresDeliveryOutbox.layer.pipe(Layer.provide(SqlClientLive))
