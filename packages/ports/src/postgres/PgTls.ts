import type { ConnectionOptions } from "node:tls"
import { Config, Option } from "effect"
import { pemFile } from "../tls/PemFile.ts"

/**
 * How DexMon's PostgreSQL connections use TLS, from `DEXMON_PG_SSL_MODE` and `DEXMON_PG_SSL_CA_FILE`.
 *
 * The modes are libpq's, meant as libpq means them:
 * - `disable`: plain TCP; a server whose `pg_hba.conf` allows only `hostssl` refuses the connection.
 * - `require`: encrypted, the server's certificate NOT verified: safe against a passive listener only,
 *   anyone on the path can present a certificate of their own and read everything (credentials included).
 * - `verify-ca`: encrypted, the certificate must chain to the CA (`DEXMON_PG_SSL_CA_FILE`, else the
 *   system's roots); any host name it carries is accepted.
 * - `verify-full`: as `verify-ca`, and the certificate must name the host DexMon connects to (DNS or IP
 *   subject alternative name). The one to use in production.
 *
 * Unset, the `sslmode` of `DATABASE_URL` applies as `@effect/sql-pg` reads it (which verifies the
 * certificate for every mode from `require` up, and does not read `sslrootcert`): the explicit variables
 * exist so that a private CA and the weaker modes are said out loud rather than implied by a URL.
 */
export const pgSslModes = ["disable", "require", "verify-ca", "verify-full"] as const
export type PgSslMode = (typeof pgSslModes)[number]

export interface PgTlsSettings {
  readonly mode: Option.Option<PgSslMode>
  /** PEM text of the CA bundle the server's certificate must chain to (replaces the system's roots). */
  readonly ca: Option.Option<string>
}

export const pgTlsConfig: Config.Config<PgTlsSettings> = Config.all({
  mode: Config.option(Config.Literals(pgSslModes, "DEXMON_PG_SSL_MODE")),
  ca: pemFile("DEXMON_PG_SSL_CA_FILE")
})

/** The `ssl` option of the client's connections for `settings`; `undefined` leaves it to `DATABASE_URL`. */
export const pgSslOption = (settings: PgTlsSettings): boolean | ConnectionOptions | undefined => {
  const ca = Option.match(settings.ca, { onNone: () => ({}), onSome: (pem) => ({ ca: pem }) })
  if (Option.isNone(settings.mode)) return Option.isSome(settings.ca) ? { ...ca, rejectUnauthorized: true } : undefined
  switch (settings.mode.value) {
    case "disable":
      return false
    case "require":
      return { rejectUnauthorized: false }
    case "verify-ca":
      // The chain is checked (rejectUnauthorized); the name in the certificate is not.
      return { ...ca, rejectUnauthorized: true, checkServerIdentity: () => undefined }
    case "verify-full":
      return { ...ca, rejectUnauthorized: true }
  }
}
