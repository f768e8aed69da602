import { Alert, InvalidCursor } from "@dexmon/domain"
import cassandra from "cassandra-driver"
import { Config, Effect, Layer, Option, Redacted, Schedule, Schema } from "effect"
import { decodeCursor, encodeCursor } from "../Cursor.ts"
import { failureOf } from "../StoreFailure.ts"
import { type AlertQuery, AlertStore, AlertStoreError } from "./AlertStore.ts"

const { errors, types } = cassandra

/**
 * `CASSANDRA_CONTACT_POINTS` (host:port, comma-separated), `CASSANDRA_LOCAL_DC`,
 * `CASSANDRA_KEYSPACE`, `CASSANDRA_REPLICATION` (`SimpleStrategy:1` for one node,
 * `NetworkTopologyStrategy:dc1=3,dc2=3` in production), `CASSANDRA_CONSISTENCY`
 * (a driver consistency name, LOCAL_QUORUM by default), `CASSANDRA_USERNAME` /
 * `CASSANDRA_PASSWORD`, `CASSANDRA_WRITE_CONCURRENCY`.
 */
export const cassandraConfig = Config.all({
  contactPoints: Config.String("CASSANDRA_CONTACT_POINTS"),
  localDataCenter: Config.String("CASSANDRA_LOCAL_DC").pipe(Config.withDefault("datacenter1")),
  keyspace: Config.String("CASSANDRA_KEYSPACE").pipe(Config.withDefault("dexmon")),
  replication: Config.String("CASSANDRA_REPLICATION").pipe(Config.withDefault("SimpleStrategy:1")),
  consistency: Config.Literals(
    ["ONE", "LOCAL_ONE", "QUORUM", "LOCAL_QUORUM", "EACH_QUORUM", "ALL"],
    "CASSANDRA_CONSISTENCY"
  ).pipe(Config.withDefault("LOCAL_QUORUM")),
  username: Config.option(Config.String("CASSANDRA_USERNAME")),
  password: Config.option(Config.Redacted("CASSANDRA_PASSWORD")),
  writeConcurrency: Config.Int("CASSANDRA_WRITE_CONCURRENCY").pipe(Config.withDefault(32))
})

const consistencyOf = {
  ONE: types.consistencies.one,
  LOCAL_ONE: types.consistencies.localOne,
  QUORUM: types.consistencies.quorum,
  LOCAL_QUORUM: types.consistencies.localQuorum,
  EACH_QUORUM: types.consistencies.eachQuorum,
  ALL: types.consistencies.all
} as const

/** `SimpleStrategy:1` or `NetworkTopologyStrategy:dc1=3,dc2=2` as a CQL replication map. */
export const replicationMap = (spec: string): string => {
  const [strategy, factors = ""] = spec.split(":")
  if (strategy === "SimpleStrategy") {
    return `{'class': 'SimpleStrategy', 'replication_factor': ${Number.parseInt(factors || "1", 10)}}`
  }
  if (strategy === "NetworkTopologyStrategy") {
    const entries = factors
      .split(",")
      .filter((entry) => entry.includes("="))
      .map((entry) => {
        const [dc, factor] = entry.split("=")
        return `'${dc!.trim()}': ${Number.parseInt(factor!, 10)}`
      })
    return `{'class': 'NetworkTopologyStrategy', ${entries.join(", ")}}`
  }
  throw new Error(
    `CASSANDRA_REPLICATION must be SimpleStrategy:<n> or NetworkTopologyStrategy:<dc>=<n>,..., got "${spec}"`
  )
}

/**
 * What Cassandra refuses for good: a statement or a value it will never accept.
 * Every other failure (no host, a closed socket, a timeout, an unavailable
 * replica, an overloaded or bootstrapping node) passes once the cluster is
 * reachable again, so a consumer waits it out instead of dead-lettering alerts.
 */
const permanentResponses: ReadonlyArray<number> = [
  types.responseErrorCodes.syntaxError,
  types.responseErrorCodes.invalid,
  types.responseErrorCodes.unauthorized,
  types.responseErrorCodes.configError,
  types.responseErrorCodes.alreadyExists,
  types.responseErrorCodes.badCredentials,
  types.responseErrorCodes.protocolError
]
const isTransient = (cause: unknown): boolean =>
  !(cause instanceof errors.ResponseError && permanentResponses.includes(cause.code))

const failWith = failureOf((fields) => new AlertStoreError(fields), isTransient)

const AlertRow = Schema.Struct({
  user_id: Schema.String,
  timestamp: Schema.Date,
  alert_id: Schema.Unknown,
  sensor_id: Schema.String,
  glucose_value: Schema.Number,
  alert_type: Schema.String,
  status: Schema.String
})

/**
 * The alert store on Apache Cassandra: `glucose_alerts` partitioned by user,
 * clustered newest first. Writes are prepared, idempotent (the alert id derives
 * from sensor, timestamp and type, so a replay rewrites the same row with the
 * same values) and sent with bounded concurrency; `save` returns only when the
 * cluster acknowledged every write at the configured consistency. Reads page
 * with the driver's paging state, which becomes the gateway's cursor.
 */
export const make = Effect.gen(function* () {
  const config = yield* cassandraConfig
  const client = new cassandra.Client({
    contactPoints: config.contactPoints.split(",").map((point) => point.trim()),
    localDataCenter: config.localDataCenter,
    ...(Option.isSome(config.username) && Option.isSome(config.password)
      ? {
          authProvider: new cassandra.auth.PlainTextAuthProvider(
            config.username.value,
            Redacted.value(config.password.value)
          )
        }
      : {}),
    queryOptions: { consistency: consistencyOf[config.consistency], prepare: true },
    socketOptions: { connectTimeout: 5_000, readTimeout: 12_000 },
    // Try a lost node again every second: the notifier is waiting for it without advancing.
    policies: { reconnection: new cassandra.policies.reconnection.ConstantReconnectionPolicy(1_000) }
  })
  // A cluster that is still starting is waited for; one that never answers fails start-up after about a minute.
  yield* Effect.acquireRelease(
    Effect.tryPromise({ try: () => client.connect(), catch: failWith("connect") }).pipe(
      Effect.tapError((error) => Effect.logWarning(`Cassandra ${config.contactPoints} not reachable yet`, error)),
      Effect.retry(Schedule.spaced("2 seconds").pipe(Schedule.upTo({ times: 30 })))
    ),
    () => Effect.promise(() => client.shutdown())
  )
  const run = (
    operation: string,
    query: string,
    params: ReadonlyArray<unknown> = [],
    options: cassandra.QueryOptions = {}
  ) => Effect.tryPromise({ try: () => client.execute(query, [...params], options), catch: failWith(operation) })

  const table = `${config.keyspace}.glucose_alerts`
  yield* run(
    "create keyspace",
    `CREATE KEYSPACE IF NOT EXISTS ${config.keyspace} WITH replication = ${replicationMap(config.replication)}`
  )
  yield* run(
    "create table",
    `CREATE TABLE IF NOT EXISTS ${table} (
      user_id text, timestamp timestamp, alert_id uuid, sensor_id text, glucose_value double,
      alert_type text, status text,
      PRIMARY KEY ((user_id), timestamp, alert_id)
    ) WITH CLUSTERING ORDER BY (timestamp DESC, alert_id DESC)`
  )
  yield* Effect.logInfo(
    `Cassandra ${config.contactPoints}: ${table} ready (${config.replication}, consistency ${config.consistency})`
  )

  const insert = `INSERT INTO ${table} (user_id, timestamp, alert_id, sensor_id, glucose_value, alert_type, status)
    VALUES (?, ?, ?, ?, ?, ?, ?)`

  const save = Effect.fn("AlertStore.save")(function* (alerts: ReadonlyArray<Alert>) {
    yield* Effect.forEach(
      alerts,
      (alert) =>
        run(
          "save",
          insert,
          [
            alert.user_id,
            new Date(alert.timestamp),
            types.Uuid.fromString(alert.alert_id),
            alert.sensor_id,
            alert.glucose_value,
            alert.alert_type,
            alert.status
          ],
          { isIdempotent: true }
        ),
      { concurrency: config.writeConcurrency, discard: true }
    )
  })

  const list = Effect.fn("AlertStore.list")(function* (query: AlertQuery) {
    const pageState = query.cursor === undefined ? undefined : (yield* decodeCursor(query.cursor, ["string"]))[0]
    const result = yield* run(
      "list",
      `SELECT user_id, timestamp, alert_id, sensor_id, glucose_value, alert_type, status FROM ${table}
       WHERE user_id = ? AND timestamp >= ? AND timestamp < ?`,
      [query.user_id, new Date(query.from), new Date(query.to)],
      { fetchSize: query.limit, ...(pageState === undefined ? {} : { pageState }) }
    ).pipe(
      Effect.catchIf(
        (error) =>
          error.cause instanceof errors.ResponseError && error.cause.code === types.responseErrorCodes.protocolError,
        () => Effect.fail(new InvalidCursor({ message: "cursor is not one this server issued" }))
      )
    )
    const items = yield* Effect.forEach(result.rows, (row) =>
      Schema.decodeUnknownEffect(AlertRow)(row).pipe(
        Effect.flatMap((r) =>
          Schema.decodeUnknownEffect(Alert)({
            alert_id: String(r.alert_id),
            user_id: r.user_id,
            sensor_id: r.sensor_id,
            timestamp: r.timestamp.toISOString(),
            glucose_value: r.glucose_value,
            alert_type: r.alert_type,
            status: r.status
          })
        )
      )
    ).pipe(Effect.mapError(failWith("list")))
    // Cassandra may hand out a paging state for a page that turns out empty: that page is then the last.
    return {
      items,
      next_cursor: result.pageState && items.length > 0 ? encodeCursor([result.pageState]) : null
    }
  })

  const ping = run("ping", "SELECT release_version FROM system.local").pipe(Effect.asVoid)

  return AlertStore.of({ save, list, ping })
})

/** The alert store on the Cassandra cluster `CASSANDRA_CONTACT_POINTS` names. */
export const layer = Layer.effect(AlertStore, make)
