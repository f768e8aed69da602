import {
  CassandraAlertStateStore,
  CassandraAlertStore,
  Database,
  KafkaEventLog,
  LocalFolderArchiveStore,
  PostgresAlertSettingsStore,
  PostgresAlertStateStore,
  PostgresAlertStore,
  PostgresArchiveLedger,
  PostgresDeliveryOutbox,
  PostgresEventLog,
  PostgresNightscoutCredentialStore,
  PostgresNightscoutDeviceStatusStore,
  PostgresReadingStore,
  PostgresSensorOwnership,
  PostgresWebhookStore,
  requireEmbeddedAllowed,
  S3ArchiveStore,
  SqlReadingStore,
  TimescaleReadingStore,
  Topics
} from "@dexmon/ports"
import { Config, Effect, Layer, Option } from "effect"

// The store layers. First the adapters under the names the product brief uses, each on the server its
// connection variable names (`KafkaLayer`, `TimescaleLayer`, `CassandraLayer`, `S3Layer`), and the ones
// `pnpm start` runs without configuration (`Embedded*Layer`, in PostgreSQL: the embedded server, or
// `DATABASE_URL`). Then what the services use (`*Live`): for each port, the real store when its
// variable is set, otherwise the embedded one, except under `DEXMON_PROFILE=production`, where a
// missing variable stops start-up.

/** PostgreSQL: `DATABASE_URL`, or the embedded server under `DEXMON_DATA_DIR`. */
export const SqlClientLive = Database.layerConfig

/** The event log on Kafka (`KAFKA_BROKERS`), its topics named by `Topics.layerConfig`. */
export const KafkaLayer = KafkaEventLog.layer.pipe(Layer.provideMerge(Topics.layerConfig))

/** The event log in PostgreSQL, for one process: `LISTEN`/`NOTIFY` in place of consumer groups. */
export const EmbeddedEventLogLayer = PostgresEventLog.layer.pipe(
  Layer.provide(SqlClientLive),
  Layer.provideMerge(Topics.layerConfig)
)

/**
 * The hot readings and the archive ledger on TimescaleDB (`DATABASE_URL`): a hypertable in chunks,
 * compressed as they age, the emptied chunks dropped by the archiver. Start-up fails without the
 * timescaledb extension.
 */
export const TimescaleLayer = PostgresArchiveLedger.layer.pipe(
  Layer.provideMerge(TimescaleReadingStore.layer),
  Layer.provide(SqlClientLive)
)

/** The hot readings and the archive ledger in plain PostgreSQL, partitioned by month. */
export const EmbeddedReadingsLayer = PostgresArchiveLedger.layer.pipe(
  Layer.provideMerge(PostgresReadingStore.layer),
  Layer.provide(SqlClientLive)
)

/** Alerts and the alert engine's per-sensor state on Cassandra (`CASSANDRA_CONTACT_POINTS`), on one session. */
export const CassandraLayer = Layer.mergeAll(CassandraAlertStore.layer, CassandraAlertStateStore.layer)

/** Alerts and the per-sensor state in PostgreSQL tables. */
export const EmbeddedAlertsLayer = Layer.mergeAll(PostgresAlertStore.layer, PostgresAlertStateStore.layer).pipe(
  Layer.provide(SqlClientLive)
)

/** Archive objects on S3 (`S3_BUCKET`, `S3_ENDPOINT`, ...). */
export const S3Layer = S3ArchiveStore.layer

/** Archive objects in a local folder (`DEXMON_ARCHIVE_DIR`). */
export const EmbeddedArchiveLayer = LocalFolderArchiveStore.layerConfig

/**
 * `real` when `variable` is set, otherwise `embedded` (refused in the production profile), each
 * layer's own errors kept in the result.
 */
const realOrEmbedded = <A, EReal, RReal, EEmbedded, REmbedded>(
  variable: string,
  real: Layer.Layer<A, EReal, RReal>,
  embedded: Layer.Layer<A, EEmbedded, REmbedded>
) =>
  Layer.unwrap(
    Effect.gen(function* (): Effect.fn.Return<
      Layer.Layer<A, EReal | EEmbedded, RReal | REmbedded>,
      Config.ConfigError
    > {
      const value = yield* Config.option(Config.String(variable))
      if (Option.isSome(value)) return real
      yield* requireEmbeddedAllowed(variable)
      return embedded
    })
  )

/** The event log: Kafka when `KAFKA_BROKERS` is set, otherwise in PostgreSQL. */
export const EventLogLive = realOrEmbedded("KAFKA_BROKERS", KafkaLayer, EmbeddedEventLogLayer)

/**
 * The readings store on `DATABASE_URL` (TimescaleDB or PostgreSQL) or the
 * embedded server, laid out as `DEXMON_READINGS_BACKEND` says (`detect` by
 * default: a hypertable where the timescaledb extension is available). Every
 * SQL layer provides the same `SqlClientLive`, which the layer graph builds
 * once: one pool, one embedded server per process.
 */
export const ReadingStoreLive = SqlReadingStore.layerConfig.pipe(Layer.provide(SqlClientLive))

/** Alerts: Cassandra when `CASSANDRA_CONTACT_POINTS` is set, otherwise a table in PostgreSQL. */
export const AlertStoreLive = realOrEmbedded(
  "CASSANDRA_CONTACT_POINTS",
  CassandraAlertStore.layer,
  PostgresAlertStore.layer.pipe(Layer.provide(SqlClientLive))
)

/**
 * The alert engine's per-sensor state, beside the alerts: Cassandra when
 * `CASSANDRA_CONTACT_POINTS` is set (on the same client as `AlertStoreLive`, as
 * both layers provide the one `CassandraSession.layer`), otherwise a table in PostgreSQL.
 */
export const AlertStateStoreLive = realOrEmbedded(
  "CASSANDRA_CONTACT_POINTS",
  CassandraAlertStateStore.layer,
  PostgresAlertStateStore.layer.pipe(Layer.provide(SqlClientLive))
)

/** Archive objects: S3 when `S3_BUCKET` is set, otherwise a local folder (`DEXMON_ARCHIVE_DIR`). */
export const ArchiveStoreLive = realOrEmbedded("S3_BUCKET", S3Layer, EmbeddedArchiveLayer)

/** The archive ledger, beside the readings it removes in the same database. */
export const ArchiveLedgerLive = PostgresArchiveLedger.layer.pipe(
  Layer.provideMerge(ReadingStoreLive),
  Layer.provide(SqlClientLive)
)

/** Sensor owners, in the readings database (`DATABASE_URL` or the embedded server). */
export const SensorOwnershipLive = PostgresSensorOwnership.layer.pipe(Layer.provide(SqlClientLive))

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
 * Users' credentials for Nightscout's tools (as digests only), in the same database (`DATABASE_URL` or the
 * embedded server): the gateway creates them, and the Nightscout endpoints authenticate by them.
 */
export const NightscoutCredentialStoreLive = PostgresNightscoutCredentialStore.layer.pipe(Layer.provide(SqlClientLive))

/** Nightscout uploaders' latest device status per sensor, in the same database. */
export const NightscoutDeviceStatusStoreLive = PostgresNightscoutDeviceStatusStore.layer.pipe(
  Layer.provide(SqlClientLive)
)

/**
 * The webhook delivery outbox, in the same database (`DATABASE_URL` or the
 * embedded server): the queue outlives the deliverer's process, and its
 * claims rest on PostgreSQL's row locks (`FOR UPDATE SKIP LOCKED`).
 */
export const DeliveryOutboxLive = PostgresDeliveryOutbox.layer.pipe(Layer.provide(SqlClientLive))
