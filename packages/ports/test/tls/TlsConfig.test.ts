import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { type Config, ConfigProvider, Effect, Option } from "effect"
import { kafkaClientSecurity, kafkaSecurityConfig } from "../../src/event-log/KafkaSecurity.ts"
import { pgSslOption, pgTlsConfig } from "../../src/postgres/PgTls.ts"

/** `config` read from these variables only; the failure's message when it fails. */
const read = <A>(config: Config.Config<A>, env: Record<string, string>) =>
  config.parse(ConfigProvider.fromEnvRecord(env))

const pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
const folder = mkdtempSync(join(tmpdir(), "dexmon-tls-config-"))
afterAll(() => rmSync(folder, { recursive: true, force: true }))
const pemFileOf = (name: string, text: string) => {
  const path = join(folder, name)
  writeFileSync(path, text)
  return path
}

describe("TLS settings from configuration", () => {
  it.effect("DEXMON_PG_SSL_MODE maps to the client's ssl option as libpq means each mode", () =>
    Effect.gen(function* () {
      const ca = pemFileOf("pg-ca.pem", pem)
      const option = (env: Record<string, string>) => Effect.map(read(pgTlsConfig, env), pgSslOption)
      assert.isUndefined(yield* option({}), "unset: the URL's sslmode decides")
      assert.strictEqual(yield* option({ DEXMON_PG_SSL_MODE: "disable" }), false)
      assert.deepStrictEqual(yield* option({ DEXMON_PG_SSL_MODE: "require" }), { rejectUnauthorized: false })
      const verifyCa = yield* option({ DEXMON_PG_SSL_MODE: "verify-ca", DEXMON_PG_SSL_CA_FILE: ca })
      assert.isObject(verifyCa)
      if (typeof verifyCa === "object") {
        assert.strictEqual(verifyCa.ca, pem)
        assert.isTrue(verifyCa.rejectUnauthorized)
        assert.isFunction(verifyCa.checkServerIdentity, "verify-ca skips the host name check only")
      }
      assert.deepStrictEqual(yield* option({ DEXMON_PG_SSL_MODE: "verify-full", DEXMON_PG_SSL_CA_FILE: ca }), {
        ca: pem,
        rejectUnauthorized: true
      })
      assert.deepStrictEqual(
        yield* option({ DEXMON_PG_SSL_CA_FILE: ca }),
        { ca: pem, rejectUnauthorized: true },
        "a CA without a mode verifies fully"
      )
    })
  )

  it.effect.each([
    ["an unknown sslmode", pgTlsConfig, { DEXMON_PG_SSL_MODE: "prefer" }, "DEXMON_PG_SSL_MODE"],
    [
      "a CA file that is missing",
      pgTlsConfig,
      { DEXMON_PG_SSL_CA_FILE: "/nonexistent/ca.pem" },
      "DEXMON_PG_SSL_CA_FILE"
    ],
    [
      "an unknown SASL mechanism",
      kafkaSecurityConfig,
      { KAFKA_SASL_MECHANISM: "gssapi", KAFKA_SASL_USERNAME: "u", KAFKA_SASL_PASSWORD: "p" },
      "KAFKA_SASL_MECHANISM"
    ],
    [
      "a SASL mechanism without a password",
      kafkaSecurityConfig,
      { KAFKA_SASL_MECHANISM: "scram-sha-512", KAFKA_SASL_USERNAME: "u" },
      "KAFKA_SASL_PASSWORD"
    ],
    [
      "SASL PLAIN without TLS (the password would travel in clear)",
      kafkaSecurityConfig,
      { KAFKA_SASL_MECHANISM: "plain", KAFKA_SASL_USERNAME: "u", KAFKA_SASL_PASSWORD: "p" },
      "KAFKA_SSL"
    ],
    [
      "SASL credentials without a mechanism",
      kafkaSecurityConfig,
      { KAFKA_SASL_USERNAME: "u", KAFKA_SASL_PASSWORD: "p" },
      "KAFKA_SASL_MECHANISM"
    ]
  ] as const)("%s fails start-up with a configuration error naming the variable", ([, config, env, variable]) =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(read(config as Config.Config<unknown>, env))
      assert.strictEqual(error._tag, "ConfigError")
      assert.include(error.message, variable)
    })
  )

  it.effect("a CA file that is not PEM is refused with its variable and path", () =>
    Effect.gen(function* () {
      const notPem = pemFileOf("not-pem.txt", "just text")
      const error = yield* Effect.flip(read(kafkaSecurityConfig, { KAFKA_SSL: "true", KAFKA_SSL_CA_FILE: notPem }))
      assert.include(error.message, `KAFKA_SSL_CA_FILE=${notPem}`)
    })
  )

  it.effect("Kafka: TLS always verifies; SASL carries the password only into the client's options", () =>
    Effect.gen(function* () {
      const ca = pemFileOf("kafka-ca.pem", pem)
      const security = yield* read(kafkaSecurityConfig, {
        KAFKA_SSL: "true",
        KAFKA_SSL_CA_FILE: ca,
        KAFKA_SASL_MECHANISM: "scram-sha-512",
        KAFKA_SASL_USERNAME: "dexmon",
        KAFKA_SASL_PASSWORD: "s3cret-value"
      })
      assert.notInclude(String(security.sasl.pipe(Option.map((sasl) => sasl.password))), "s3cret-value")
      assert.deepStrictEqual(kafkaClientSecurity(security), {
        ssl: { rejectUnauthorized: true, ca: pem },
        sasl: { mechanism: "scram-sha-512", username: "dexmon", password: "s3cret-value" }
      })
      assert.deepStrictEqual(kafkaClientSecurity(yield* read(kafkaSecurityConfig, {})), {})
    })
  )
})
