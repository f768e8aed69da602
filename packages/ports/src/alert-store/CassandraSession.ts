import type cassandra from "cassandra-driver"
import { Config, Context, Effect, Layer, Option, Predicate, Redacted, Schedule, Schema } from "effect"
import { failureOf, StoreFailureFields } from "../StoreFailure.ts"
import { pemFile } from "../tls/PemFile.ts"

/**
 * `CASSANDRA_CONTACT_POINTS` (host:port, comma-separated), `CASSANDRA_LOCAL_DC`,
 * `CASSANDRA_KEYSPACE`, `CASSANDRA_REPLICATION` (`SimpleStrategy:1` for one node,
 * `NetworkTopologyStrategy:dc1=3,dc2=3` in production), `CASSANDRA_CONSISTENCY`
 * (a driver consistency name, LOCAL_QUORUM by default), `CASSANDRA_USERNAME` /
 * `CASSANDRA_PASSWORD`, `CASSANDRA_WRITE_CONCURRENCY`, `CASSANDRA_SSL` with `CASSANDRA_SSL_CA_FILE`
 * (client-to-node TLS; the node's certificate is always verified, against that CA when given, else the
 * system's roots, and must name the host of each contact point).
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
  writeConcurrency: Config.Int("CASSANDRA_WRITE_CONCURRENCY").pipe(Config.withDefault(32)),
  ssl: Config.Boolean("CASSANDRA_SSL").pipe(Config.withDefault(false)),
  sslCa: pemFile("CASSANDRA_SSL_CA_FILE")
})
export type CassandraConfig = Config.Success<typeof cassandraConfig>

/**
 * The consistency levels as the CQL native protocol numbers them (the driver's `types.consistencies`),
 * written out so that this module, which every process loads, does not load the driver.
 */
export const consistencyOf = {
  ONE: 0x01,
  LOCAL_ONE: 0x0a,
  QUORUM: 0x04,
  LOCAL_QUORUM: 0x06,
  EACH_QUORUM: 0x07,
  ALL: 0x05,
  LOCAL_SERIAL: 0x09
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
 * What Cassandra refuses for good: a statement or a value it will never accept,
 * and a value the driver cannot encode (`TypeError`, `ArgumentError`). Every
 * other failure (no host, a closed socket, a timeout, an unavailable replica, an
 * overloaded or bootstrapping node, and credentials or grants that refuse every
 * statement alike until an operator fixes them) says nothing about the alert and
 * passes with time, so a consumer waits it out instead of dead-lettering alerts.
 * The codes are the native protocol's (the driver's `types.responseErrorCodes`) and the error classes
 * are known by name, so telling them apart needs no driver loaded.
 */
export const responseErrorCodes = {
  protocolError: 0x000a,
  syntaxError: 0x2000,
  invalid: 0x2200,
  configError: 0x2300,
  alreadyExists: 0x2400
} as const
const permanentResponses: ReadonlyArray<number> = Object.values(responseErrorCodes)

/** A driver error of the given class, known by the name the driver gives each of its errors (`this.constructor.name`). */
const isDriverError = (cause: unknown, name: string): cause is Error => cause instanceof Error && cause.name === name

/** A Cassandra response error with the given protocol code (`errors.ResponseError`). */
export const isResponseError = (cause: unknown, code: number): boolean =>
  isDriverError(cause, "ResponseError") && Predicate.hasProperty(cause, "code") && cause.code === code

export const isTransient = (cause: unknown): boolean =>
  !(
    permanentResponses.some((code) => isResponseError(cause, code)) ||
    cause instanceof TypeError ||
    isDriverError(cause, "ArgumentError") ||
    isDriverError(cause, "NotSupportedError")
  )

export class CassandraSessionError extends Schema.TaggedError<CassandraSessionError>()(
  "CassandraSessionError",
  StoreFailureFields
) {}

export interface CqlStatement {
  readonly query: string
  readonly params: ReadonlyArray<unknown>
}

/** Statements on the shared client, failing with one port's own error. */
export interface CassandraRunner<E> {
  readonly failWith: (operation: string) => (cause: unknown) => E
  readonly run: (
    operation: string,
    query: string,
    params?: ReadonlyArray<unknown>,
    options?: cassandra.QueryOptions
  ) => Effect.Effect<cassandra.types.ResultSet, E>
  /** Every row of a query, page after page (`fetchSize` rows a round trip). */
  readonly runAll: (
    operation: string,
    query: string,
    params?: ReadonlyArray<unknown>,
    options?: cassandra.QueryOptions
  ) => Effect.Effect<ReadonlyArray<cassandra.types.Row>, E>
  /** A logged batch: every statement applies, or (after the batch log replays it) every one does. */
  readonly batch: (
    operation: string,
    statements: ReadonlyArray<CqlStatement>,
    options?: cassandra.QueryOptions
  ) => Effect.Effect<void, E>
}

const runnerOf =
  (client: cassandra.Client) =>
  <E>(makeError: (fields: { operation: string; message: string; transient: boolean; cause: unknown }) => E) => {
    const failWith = failureOf(makeError, isTransient)
    const run: CassandraRunner<E>["run"] = (operation, query, params = [], options = {}) =>
      Effect.tryPromise({ try: () => client.execute(query, [...params], options), catch: failWith(operation) })
    const runAll: CassandraRunner<E>["runAll"] = (operation, query, params = [], options = {}) =>
      Effect.gen(function* () {
        const rows: Array<cassandra.types.Row> = []
        let pageState: string | undefined
        do {
          const result = yield* run(operation, query, params, {
            ...options,
            ...(pageState === undefined ? {} : { pageState })
          })
          rows.push(...result.rows)
          pageState = result.pageState ?? undefined
        } while (pageState !== undefined)
        return rows
      })
    const batch: CassandraRunner<E>["batch"] = (operation, statements, options = {}) =>
      Effect.tryPromise({
        try: () =>
          client.batch(
            statements.map((statement) => ({ query: statement.query, params: [...statement.params] })),
            { logged: true, ...options }
          ),
        catch: failWith(operation)
      }).pipe(Effect.asVoid)
    return { failWith, run, runAll, batch } satisfies CassandraRunner<E>
  }

/**
 * One Cassandra client per process, shared by the alert store and the alert
 * engine's state store: connected (waiting for a cluster that is still
 * starting), the keyspace created, and shut down when the layer is released.
 * Statements are prepared and sent at `CASSANDRA_CONSISTENCY` unless a store
 * asks for more.
 */
export class CassandraSession extends Context.Service<
  CassandraSession,
  {
    readonly config: CassandraConfig
    /** The driver module, loaded when the session is built: a process without Cassandra never loads it. */
    readonly driver: typeof cassandra
    readonly client: cassandra.Client
    readonly runner: <E>(
      makeError: (fields: { operation: string; message: string; transient: boolean; cause: unknown }) => E
    ) => CassandraRunner<E>
  }
>()("dexmon/ports/alert-store/CassandraSession") {
  /** The session on the cluster `CASSANDRA_CONTACT_POINTS` names. */
  static readonly layer = Layer.effect(
    CassandraSession,
    Effect.gen(function* () {
      const config = yield* cassandraConfig
      const driver = (yield* Effect.promise(() => import("cassandra-driver"))).default
      const client = new driver.Client({
        contactPoints: config.contactPoints.split(",").map((point) => point.trim()),
        localDataCenter: config.localDataCenter,
        ...(Option.isSome(config.username) && Option.isSome(config.password)
          ? {
              authProvider: new driver.auth.PlainTextAuthProvider(
                config.username.value,
                Redacted.value(config.password.value)
              )
            }
          : {}),
        ...(config.ssl
          ? {
              sslOptions: {
                rejectUnauthorized: true,
                ...(Option.isSome(config.sslCa) ? { ca: config.sslCa.value } : {})
              }
            }
          : {}),
        queryOptions: { consistency: consistencyOf[config.consistency], prepare: true },
        socketOptions: { connectTimeout: 5_000, readTimeout: 12_000 },
        // Try a lost node again every second: the notifier is waiting for it without advancing.
        policies: { reconnection: new driver.policies.reconnection.ConstantReconnectionPolicy(1_000) }
      })
      const runner = runnerOf(client)
      const { failWith, run } = runner((fields) => new CassandraSessionError(fields))
      // A cluster that is still starting is waited for; one that never answers fails start-up after about a minute.
      yield* Effect.acquireRelease(
        Effect.tryPromise({ try: () => client.connect(), catch: failWith("connect") }).pipe(
          Effect.tapError((error) => Effect.logWarning(`Cassandra ${config.contactPoints} not reachable yet`, error)),
          Effect.retry(Schedule.spaced("2 seconds").pipe(Schedule.upTo({ times: 30 })))
        ),
        () => Effect.promise(() => client.shutdown())
      )
      yield* run(
        "create keyspace",
        `CREATE KEYSPACE IF NOT EXISTS ${config.keyspace} WITH replication = ${replicationMap(config.replication)}`
      )
      yield* Effect.logInfo(
        `Cassandra ${config.contactPoints}: keyspace ${config.keyspace} ready (${config.replication}, consistency ${config.consistency})`
      )
      return CassandraSession.of({ config, driver, client, runner })
    })
  )
}
