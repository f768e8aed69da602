import { join } from "node:path"
import { PgClient } from "@effect/sql-pg"
import { Config, Duration, Effect, Layer, Option, type Redacted } from "effect"
import { intInRange } from "../ConfigRange.ts"
import { requireEmbeddedAllowed } from "../DeploymentProfile.ts"
import * as BoundedPgClient from "./BoundedPgClient.ts"
import { EmbeddedPostgres } from "./EmbeddedPostgres.ts"
import { type PgTlsSettings, pgSslOption, pgTlsConfig } from "./PgTls.ts"

/**
 * How long the client waits on PostgreSQL before it gives a connection up. A connection whose packets
 * are dropped is silent rather than closed, so without these bounds a network partition would stall
 * every service that waits on the database for as long as the partition lasts.
 */
export interface ConnectionBounds {
  /** A statement (a streamed query: each wait for rows) unanswered this long fails as a lost connection. */
  readonly queryTimeout: Duration.Input
  /** Connecting, TLS and authentication together. */
  readonly connectTimeout: Duration.Input
  /** Idle time before TCP keepalive probes start; a dead peer then fails the connection about 10 s later. */
  readonly keepAlive: Duration.Input
}

/**
 * Generous enough for the longest legitimate statement (the archiver's deletes of a day of readings
 * are each one statement, however large their transaction), short enough that a partition costs a
 * consumer well under a minute before it retries on a fresh connection.
 */
export const defaultBounds: ConnectionBounds = {
  queryTimeout: Duration.seconds(30),
  connectTimeout: Duration.seconds(10),
  keepAlive: Duration.seconds(10)
}

/** `DEXMON_PG_QUERY_TIMEOUT`, `DEXMON_PG_CONNECT_TIMEOUT`, `DEXMON_PG_KEEPALIVE` (e.g. `30 seconds`). */
export const boundsConfig: Config.Config<ConnectionBounds> = Config.all({
  queryTimeout: Config.Duration("DEXMON_PG_QUERY_TIMEOUT").pipe(
    Config.withDefault(Duration.fromInputUnsafe(defaultBounds.queryTimeout))
  ),
  connectTimeout: Config.Duration("DEXMON_PG_CONNECT_TIMEOUT").pipe(
    Config.withDefault(Duration.fromInputUnsafe(defaultBounds.connectTimeout))
  ),
  keepAlive: Config.Duration("DEXMON_PG_KEEPALIVE").pipe(
    Config.withDefault(Duration.fromInputUnsafe(defaultBounds.keepAlive))
  )
})

/**
 * The PostgreSQL connection shared by the PostgreSQL layers of every port.
 * `DATABASE_URL` selects a real server (TimescaleDB or PostgreSQL); without it
 * DexMon starts an embedded server under `DEXMON_DATA_DIR`, except in the
 * production profile, where a missing URL is a start-up error. Every round
 * trip is bounded on the client side (see `ConnectionBounds`), and every connection uses TLS as
 * `tls` says (`DEXMON_PG_SSL_MODE`, `DEXMON_PG_SSL_CA_FILE`; see `PgTls.ts`).
 */
export const layerPgClient = (
  url: Redacted.Redacted<string>,
  options?: {
    readonly maxConnections?: number | undefined
    readonly bounds?: Partial<ConnectionBounds> | undefined
    readonly tls?: PgTlsSettings | undefined
  }
) => {
  const bounds = { ...defaultBounds, ...options?.bounds }
  const ssl = options?.tls === undefined ? undefined : pgSslOption(options.tls)
  return PgClient.layerFrom(
    BoundedPgClient.make({
      url,
      maxConnections: options?.maxConnections ?? 20,
      applicationName: "dexmon",
      queryTimeout: bounds.queryTimeout,
      connectTimeout: bounds.connectTimeout,
      keepAlive: bounds.keepAlive,
      ...(ssl === undefined ? {} : { ssl })
    })
  )
}

export const layerEmbedded = (options: {
  readonly dataDir: string
  readonly port: number
  readonly bounds?: Partial<ConnectionBounds> | undefined
}) =>
  Layer.unwrap(
    Effect.gen(function* () {
      const embedded = yield* EmbeddedPostgres
      return layerPgClient(embedded.url, { bounds: options.bounds })
    })
  ).pipe(Layer.provideMerge(EmbeddedPostgres.layer(options)))

/**
 * `DEXMON_PG_POOL_SIZE`: connections per process (default 20). 1 for a server that serves one session
 * at a time, such as the harness's TimescaleDB (PGlite).
 */
export const poolSizeConfig = intInRange("DEXMON_PG_POOL_SIZE", 20, 1, 1_000)

export const layerConfig = Layer.unwrap(
  Effect.gen(function* () {
    const bounds = yield* boundsConfig
    const url = yield* Config.option(Config.Redacted("DATABASE_URL"))
    if (Option.isSome(url)) {
      return layerPgClient(url.value, { bounds, tls: yield* pgTlsConfig, maxConnections: yield* poolSizeConfig })
    }
    yield* requireEmbeddedAllowed("DATABASE_URL")
    const dataDir = yield* Config.String("DEXMON_DATA_DIR").pipe(Config.withDefault(".data"))
    const port = yield* Config.Port("DEXMON_EMBEDDED_PG_PORT").pipe(Config.withDefault(54329))
    return Layer.orDie(layerEmbedded({ dataDir: join(dataDir, "postgres"), port, bounds }))
  })
)

export { type PgSslMode, type PgTlsSettings, pgSslModes, pgSslOption, pgTlsConfig } from "./PgTls.ts"
