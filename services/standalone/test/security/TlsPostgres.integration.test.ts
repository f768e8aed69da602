import { SensorId, UserId } from "@dexmon/domain"
import { Database, PostgresSensorOwnership, SensorOwnership } from "@dexmon/ports"
import { makeCertificateAuthority, makeTlsPostgres, type TlsPostgres } from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { Cause, ConfigProvider, Effect, Exit, Layer, Option } from "effect"
import { SqlClient } from "effect/sql"

/**
 * DexMon's PostgreSQL client over TLS, configured only through the variables the services read
 * (`DATABASE_URL`, `DEXMON_PG_SSL_MODE`, `DEXMON_PG_SSL_CA_FILE`), against private servers that accept
 * TLS connections only, with certificates signed by a CA this test makes.
 */

/** The SQL client as the services build it, from these variables only, with a store over it. */
const storeFrom = (env: Record<string, string>) =>
  PostgresSensorOwnership.layer.pipe(
    Layer.provideMerge(Database.layerConfig),
    Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord(env)))
  )

/** Whether this session is encrypted, as the server sees it. */
const sessionEncrypted = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<{ ssl: boolean }>`SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`
  return row?.ssl === true
})

/** A claim and a read of it back: a store's round trip through the client. */
const claimAndRead = (sensor: string) =>
  Effect.gen(function* () {
    const ownership = yield* SensorOwnership
    const claim = yield* ownership.claim(UserId.make("tls-user"), [SensorId.make(sensor)])
    const owner = yield* ownership.ownerOf(SensorId.make(sensor))
    return { claim, owner, encrypted: yield* sessionEncrypted }
  })

/** Runs a claim through a client built from `env`, which must fail; the failure's text, for the reason. */
const refused = (env: Record<string, string>, sensor: string) =>
  Effect.gen(function* () {
    const exit = yield* claimAndRead(sensor).pipe(Effect.provide(storeFrom(env)), Effect.exit)
    assert.isTrue(Exit.isFailure(exit), `expected the connection to be refused with ${JSON.stringify(env)}`)
    return Exit.isFailure(exit) ? Cause.pretty(exit.cause) : ""
  })

/** Who owns `sensor`, read over a connection that is known to work. */
const ownerSeenBy = (server: TlsPostgres, caFile: string, sensor: string) =>
  Effect.gen(function* () {
    const ownership = yield* SensorOwnership
    return yield* ownership.ownerOf(SensorId.make(sensor))
  }).pipe(
    Effect.provide(
      storeFrom({ DATABASE_URL: server.url(), DEXMON_PG_SSL_MODE: "verify-full", DEXMON_PG_SSL_CA_FILE: caFile })
    )
  )

describe("PostgreSQL over TLS: DEXMON_PG_SSL_MODE and DEXMON_PG_SSL_CA_FILE (issue 16)", () => {
  it.live(
    "verify-full with the server's CA connects encrypted and the store works; another CA, a certificate for another name, or no TLS is refused, and nothing is written",
    () =>
      Effect.gen(function* () {
        const authority = yield* makeCertificateAuthority("pg")
        const other = yield* makeCertificateAuthority("pg-other")
        // One server whose certificate names 127.0.0.1, one whose certificate names another host only.
        const [server, misnamed] = yield* Effect.all(
          [
            authority.issue("127.0.0.1", ["127.0.0.1", "localhost"]).pipe(Effect.flatMap(makeTlsPostgres)),
            authority.issue("db.elsewhere.test", ["db.elsewhere.test"]).pipe(Effect.flatMap(makeTlsPostgres))
          ],
          { concurrency: "unbounded" }
        )
        const run = Date.now().toString(36)

        const verified = yield* claimAndRead(`tls-ok-${run}`).pipe(
          Effect.provide(
            storeFrom({
              DATABASE_URL: server.url(),
              DEXMON_PG_SSL_MODE: "verify-full",
              DEXMON_PG_SSL_CA_FILE: authority.certificateFile
            })
          )
        )
        assert.isTrue(verified.encrypted, "the server sees an unencrypted session")
        assert.deepStrictEqual(verified.claim.claimed, [SensorId.make(`tls-ok-${run}`)])
        assert.deepStrictEqual(verified.owner, Option.some(UserId.make("tls-user")))

        // A certificate signed by a CA the client was not told to trust.
        const untrusted = `tls-untrusted-${run}`
        const untrustedReason = yield* refused(
          {
            DATABASE_URL: server.url(),
            DEXMON_PG_SSL_MODE: "verify-full",
            DEXMON_PG_SSL_CA_FILE: other.certificateFile
          },
          untrusted
        )
        assert.match(untrustedReason, /unable to (verify|get local issuer)|self.signed/i)

        // The right CA, but the certificate names db.elsewhere.test and the client connects to 127.0.0.1.
        const wrongName = `tls-wrong-name-${run}`
        const wrongNameReason = yield* refused(
          {
            DATABASE_URL: misnamed.url(),
            DEXMON_PG_SSL_MODE: "verify-full",
            DEXMON_PG_SSL_CA_FILE: authority.certificateFile
          },
          wrongName
        )
        assert.match(wrongNameReason, /does not match certificate's altnames/i)

        // No TLS at all: the server's pg_hba.conf has hostssl lines only, and it says so.
        const plain = `tls-plain-${run}`
        const plainReason = yield* refused({ DATABASE_URL: server.url(), DEXMON_PG_SSL_MODE: "disable" }, plain)
        assert.match(plainReason, /no encryption|pg_hba\.conf/i)

        // Nothing the refused clients tried to write is there.
        for (const sensor of [untrusted, wrongName, plain]) {
          assert.isTrue(Option.isNone(yield* ownerSeenBy(server, authority.certificateFile, sensor)), sensor)
        }

        // verify-ca checks the chain only: the misnamed server is accepted. `require` checks nothing: a
        // server whose CA the client does not know is accepted too (the risk the README spells out).
        const chainOnly = yield* claimAndRead(`tls-verify-ca-${run}`).pipe(
          Effect.provide(
            storeFrom({
              DATABASE_URL: misnamed.url(),
              DEXMON_PG_SSL_MODE: "verify-ca",
              DEXMON_PG_SSL_CA_FILE: authority.certificateFile
            })
          )
        )
        assert.isTrue(chainOnly.encrypted)
        const unverified = yield* claimAndRead(`tls-require-${run}`).pipe(
          Effect.provide(
            storeFrom({
              DATABASE_URL: server.url(),
              DEXMON_PG_SSL_MODE: "require",
              DEXMON_PG_SSL_CA_FILE: other.certificateFile
            })
          )
        )
        assert.isTrue(unverified.encrypted)
      }),
    { timeout: 120_000 }
  )
})
