import { CassandraSession } from "@dexmon/ports"
import { makeCertificateAuthority, makeTlsFront, requiredServer } from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer } from "effect"

/**
 * DexMon's Cassandra client over TLS (`CASSANDRA_SSL`, `CASSANDRA_SSL_CA_FILE`): the harness's node
 * behind a TLS front whose certificate a CA of this test's own signed. A private Cassandra with its
 * own keystore would be the fuller test; it costs a JVM and a minute, the front costs neither.
 */

const [contactHost = "127.0.0.1", contactPort = "9042"] = requiredServer("CASSANDRA_CONTACT_POINTS")
  .split(",")[0]!
  .split(":")

const sessionFrom = (env: Record<string, string>) =>
  CassandraSession.layer.pipe(
    Layer.provide(
      ConfigProvider.layer(
        ConfigProvider.fromEnvRecord({
          CASSANDRA_LOCAL_DC: process.env.CASSANDRA_LOCAL_DC ?? "datacenter1",
          ...env
        })
      )
    )
  )

describe("Cassandra over TLS: CASSANDRA_SSL and CASSANDRA_SSL_CA_FILE (issue 16)", () => {
  it.live("with the CA the session connects over TLS, creates its keyspace and answers a query", () =>
    Effect.gen(function* () {
      const authority = yield* makeCertificateAuthority("cassandra")
      const front = yield* makeTlsFront(
        { host: contactHost, port: Number(contactPort) },
        yield* authority.issue("127.0.0.1", ["127.0.0.1", "localhost"])
      )
      const keyspace = `tls_${Date.now().toString(36)}`
      const release = yield* Effect.gen(function* () {
        const session = yield* CassandraSession
        const result = yield* Effect.promise(() => session.client.execute("SELECT release_version FROM system.local"))
        // The session created the keyspace through the channel; this test's own, so it goes with the test.
        yield* Effect.promise(() => session.client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`))
        return String(result.first()?.get("release_version"))
      }).pipe(
        Effect.provide(
          sessionFrom({
            CASSANDRA_CONTACT_POINTS: `127.0.0.1:${front.port}`,
            CASSANDRA_SSL: "true",
            CASSANDRA_SSL_CA_FILE: authority.certificateFile,
            CASSANDRA_KEYSPACE: keyspace
          })
        )
      )
      assert.match(release, /^\d+\./)
      assert.isAbove(front.handshakes(), 0, "the session did not connect through the TLS front")
    })
  )
})
