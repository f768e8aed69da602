import {
  type AlertStore,
  CassandraAlertStore,
  Database,
  type EventLog,
  KafkaEventLog,
  PostgresAlertStore,
  PostgresEventLog,
  requireEmbeddedAllowed,
  SqlReadingStore,
  Topics
} from "@dexmon/ports"
import { Config, Effect, Layer, Option } from "effect"
import type { SqlClient } from "effect/sql"

// The store layers, chosen by configuration. Each real store is selected by its
// connection variable; without it the embedded store is used, except under
// `DEXMON_PROFILE=production`, where a missing variable stops start-up.

/** PostgreSQL: `DATABASE_URL`, or the embedded server under `DEXMON_DATA_DIR`. */
export const SqlClientLive = Database.layerConfig

/** The event log: Kafka when `KAFKA_BROKERS` is set, otherwise the embedded log in PostgreSQL. */
export const EventLogLive = Layer.unwrap(
  Effect.gen(function* () {
    const brokers = yield* Config.option(Config.String("KAFKA_BROKERS"))
    const layer: Layer.Layer<EventLog, unknown, SqlClient.SqlClient | Topics> = Option.isSome(brokers)
      ? KafkaEventLog.layer
      : PostgresEventLog.layer
    if (Option.isNone(brokers)) yield* requireEmbeddedAllowed("KAFKA_BROKERS")
    return layer
  })
).pipe(Layer.provideMerge(Topics.layerConfig))

export const ReadingStoreLive = SqlReadingStore.layer

/** Alerts: Cassandra when `CASSANDRA_CONTACT_POINTS` is set, otherwise a table in PostgreSQL. */
export const AlertStoreLive = Layer.unwrap(
  Effect.gen(function* () {
    const contactPoints = yield* Config.option(Config.String("CASSANDRA_CONTACT_POINTS"))
    const layer: Layer.Layer<AlertStore, unknown, SqlClient.SqlClient> = Option.isSome(contactPoints)
      ? CassandraAlertStore.layer
      : PostgresAlertStore.layer
    if (Option.isNone(contactPoints)) yield* requireEmbeddedAllowed("CASSANDRA_CONTACT_POINTS")
    return layer
  })
)
