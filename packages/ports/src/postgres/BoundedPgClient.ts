import { PgClient, type PgConnection, PgPool } from "@effect/sql-pg"
import { Duration, Effect, Stream } from "effect"
import type * as Arr from "effect/Array"
import type * as Reactivity from "effect/reactivity/Reactivity"
import type { Scope } from "effect/Scope"
import { SqlClient } from "effect/sql"
import type { Connection } from "effect/sql/SqlConnection"
import { ConnectionError, SqlError, UnknownError } from "effect/sql/SqlError"
import * as Statement from "effect/sql/Statement"

export interface BoundedPgClientOptions extends PgClient.PgPoolConfig {
  /**
   * The longest a statement may wait for PostgreSQL's answer (a streamed query: for each chunk of
   * rows). Past it the statement fails with a retryable `ConnectionError` and its connection is
   * taken out of the pool.
   */
  readonly queryTimeout: Duration.Input
}

/**
 * A pooled PostgreSQL client, as `PgClient.make` builds it, whose every round trip has a client-side
 * deadline.
 *
 * A connection whose packets are dropped (a network partition, a lost middlebox state, a server that
 * vanished) is silent, not closed: nothing fails, and a statement on it waits for as long as the
 * silence lasts. `statement_timeout` cannot help (the server never sees the statement, or its answer
 * never arrives) and TCP keepalive only probes while no sent data awaits acknowledgement, so only the
 * client can bound the wait. A statement past `queryTimeout` is interrupted (the driver then drains
 * the connection or, within its own 5 s, gives it up), its connection is invalidated so no later
 * statement reuses it, and the caller gets a `ConnectionError`: retryable, so consumers wait and try
 * again on a fresh connection instead of dead-lettering good events.
 *
 * `@effect/sql-pg` 4.0.5 has no per-statement timeout and builds its connections privately, so this
 * is `PgClient.make` with the timeout around each statement of each connection the pool lends.
 */
export const make = Effect.fnUntraced(function* (
  options: BoundedPgClientOptions
): Effect.fn.Return<PgClient.PgClient, SqlError, Scope | Reactivity.Reactivity> {
  const pool = yield* PgPool.make(options)
  const timeout = Duration.fromInputUnsafe(options.queryTimeout)
  const bound = (connection: PgConnection.PgConnection): Connection =>
    new BoundedConnection(connection, timeout, pool.invalidate(connection))
  const transformRows = options.transformResultNames
    ? Statement.defaultTransforms(options.transformResultNames, options.transformJson).array
    : undefined
  const client = yield* SqlClient.make({
    acquirer: Effect.map(pool.get, bound),
    borrower: (f) => pool.use((connection) => f(bound(connection))),
    transactionAcquirer: Effect.map(pool.reserve, bound),
    compiler: PgClient.makeCompiler(options.transformQueryNames, options.transformJson),
    driver: "pg",
    prepareTransactionControls: true,
    commit,
    releaseSavepoint: (name) => `RELEASE SAVEPOINT ${name}`,
    spanAttributes: [
      ...(options.spanAttributes ? Object.entries(options.spanAttributes) : []),
      ["db.system.name", "postgresql"],
      ["db.namespace", options.database ?? options.username ?? "postgres"],
      ["server.address", options.host ?? "localhost"],
      ["server.port", options.port ?? 5432]
    ],
    transformRows,
    // A connection dropped at its deadline has no transaction left (the server rolls back when the socket
    // closes): a ROLLBACK sent on it would fail as a defect and hide the retryable lost connection.
    isTransaction: (connection) => !(connection instanceof BoundedConnection && connection.dropped)
  })
  const pgClient: PgClient.PgClient = Object.assign(client, {
    [PgClient.TypeId]: PgClient.TypeId,
    config: options,
    json: (value: unknown) => Statement.fragment([PgJson(value, undefined, undefined)]),
    // A listener waits for notifications as long as it lives: silence there is not a stalled statement.
    listen: (channel: string) => Effect.flatMap(pool.reserve, (connection) => connection.listen(channel)),
    notify: (channel: string, payload: string) =>
      Effect.asVoid(
        pool.use((connection) =>
          bounded(
            connection.query("SELECT pg_notify($1, $2)", [channel, payload]),
            timeout,
            pool.invalidate(connection)
          )
        )
      )
  })
  return pgClient
})

/** `PgClient`'s JSON parameter: the compiler from `PgClient.makeCompiler` encodes this kind as `jsonb`. */
interface PgJson extends Statement.Custom<"PgJson", unknown> {}
const PgJson = Statement.custom<PgJson>("PgJson")

/** The error a statement past its deadline fails with: a lost connection, which is retryable. */
const timedOut = (timeout: Duration.Duration) =>
  new SqlError({
    reason: new ConnectionError({
      cause: new Error(`no answer from PostgreSQL within ${Duration.format(timeout)}`),
      message: `PgClient: no answer from PostgreSQL within ${Duration.format(timeout)}; the connection is dropped`,
      operation: "query"
    })
  })

/**
 * Runs one round trip under the deadline. On expiry the statement is interrupted first (the driver
 * cancels and drains it, or destroys the connection) and the connection invalidated, so the pool opens
 * a new one rather than lend the silent one again.
 */
const bounded = <A>(
  effect: Effect.Effect<A, SqlError>,
  timeout: Duration.Duration,
  invalidate: Effect.Effect<void>
): Effect.Effect<A, SqlError> =>
  Effect.timeoutOrElse(effect, {
    duration: timeout,
    orElse: () => Effect.andThen(invalidate, Effect.fail(timedOut(timeout)))
  })

/** `PgClient`'s own connection adapter, with every statement bounded by the deadline. */
class BoundedConnection implements Connection {
  readonly connection: PgConnection.PgConnection
  readonly timeout: Duration.Duration
  readonly invalidate: Effect.Effect<void>

  constructor(connection: PgConnection.PgConnection, timeout: Duration.Duration, invalidate: Effect.Effect<void>) {
    this.connection = connection
    this.timeout = timeout
    this.invalidate = invalidate
  }

  /** Set when a statement ran past the deadline and the connection was given up. */
  dropped = false

  private readonly drop = Effect.suspend(() => {
    this.dropped = true
    return this.invalidate
  })

  private bound<A>(effect: Effect.Effect<A, SqlError>) {
    return bounded(effect, this.timeout, this.drop)
  }

  private run(sql: string, params: ReadonlyArray<unknown>, prepare = true) {
    return this.bound(Effect.map(this.connection.query(sql, params, prepare), (result) => result.rows))
  }

  execute(
    sql: string,
    params: ReadonlyArray<unknown>,
    transformRows: (<A extends object>(row: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined
  ) {
    return transformRows ? Effect.map(this.run(sql, params), transformRows) : this.run(sql, params)
  }
  executeRaw(sql: string, params: ReadonlyArray<unknown>) {
    return this.bound(this.connection.query(sql, params))
  }
  executeWithoutTransform(sql: string, params: ReadonlyArray<unknown>) {
    return this.run(sql, params)
  }
  executeValues(sql: string, params: ReadonlyArray<unknown>) {
    return this.bound(this.connection.queryValues(sql, params))
  }
  executeValuesUnprepared(sql: string, params: ReadonlyArray<unknown>) {
    return this.bound(this.connection.queryValues(sql, params, false))
  }
  executeUnprepared(
    sql: string,
    params: ReadonlyArray<unknown>,
    transformRows: (<A extends object>(row: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined
  ) {
    const operation = this.run(sql, params, false)
    return transformRows ? Effect.map(operation, transformRows) : operation
  }
  executeStream(
    sql: string,
    params: ReadonlyArray<unknown>,
    transformRows: (<A extends object>(row: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined
  ) {
    // A stream may legitimately run long, so the deadline applies to each wait for rows, not to the whole.
    const stream = this.connection.stream(sql, params).pipe(
      Stream.timeoutOrElse({
        duration: this.timeout,
        orElse: () => Stream.fromEffect(Effect.andThen(this.drop, Effect.fail(timedOut(this.timeout))))
      })
    )
    return transformRows
      ? Stream.mapArray(stream, (rows) => transformRows(rows) as Arr.NonEmptyReadonlyArray<PgConnection.Row>)
      : stream
  }
}

/** PostgreSQL answers `COMMIT` with `ROLLBACK` when the transaction had already failed (as `PgClient` checks). */
const commit = (connection: Connection): Effect.Effect<void, SqlError> =>
  Effect.flatMap(connection.executeRaw("COMMIT", []) as Effect.Effect<PgConnection.Result, SqlError>, (result) =>
    result.command === "ROLLBACK"
      ? Effect.fail(
          new SqlError({
            reason: new UnknownError({
              cause: new Error("COMMIT rolled back an aborted transaction"),
              message: "PgClient: COMMIT rolled back an aborted transaction",
              operation: "commit"
            })
          })
        )
      : Effect.void
  )
