import type { ConnectionOptions } from "node:tls"
import { Config, ConfigProvider, Effect, Option, Redacted } from "effect"
import type { SASLOptions } from "kafkajs"
import { pemFile } from "../tls/PemFile.ts"

export const kafkaSaslMechanisms = ["scram-sha-512", "scram-sha-256", "plain"] as const

/**
 * How DexMon's Kafka clients reach the brokers: TLS (`KAFKA_SSL`, `KAFKA_SSL_CA_FILE`, and a client
 * certificate for brokers that ask for one: `KAFKA_SSL_CERT_FILE`, `KAFKA_SSL_KEY_FILE`) and SASL
 * (`KAFKA_SASL_MECHANISM`, `KAFKA_SASL_USERNAME`, `KAFKA_SASL_PASSWORD`). Read in one place, so that
 * every client the services build (producer, consumers, the topic admin) connects alike.
 *
 * With TLS on, the broker's certificate is always verified, against `KAFKA_SSL_CA_FILE` when given,
 * else the system's roots, and must name the host in `KAFKA_BROKERS`. `plain` sends the password as
 * it is: only over TLS. The password stays `Redacted` until the client is built.
 */
/**
 * SASL is all three variables or none: a mechanism without its credentials (or credentials without a
 * mechanism) fails start-up naming what is missing, instead of quietly connecting without SASL.
 */
const saslOf = (sasl: {
  readonly mechanism: Option.Option<(typeof kafkaSaslMechanisms)[number]>
  readonly username: Option.Option<string>
  readonly password: Option.Option<Redacted.Redacted<string>>
}) => {
  const { mechanism, username, password } = sasl
  if (Option.isSome(mechanism) && Option.isSome(username) && Option.isSome(password)) {
    return Effect.succeed(
      Option.some({ mechanism: mechanism.value, username: username.value, password: password.value })
    )
  }
  if (Option.isNone(mechanism) && Option.isNone(username) && Option.isNone(password)) {
    return Effect.succeed(Option.none())
  }
  const missing = [
    Option.isNone(mechanism) ? "KAFKA_SASL_MECHANISM" : undefined,
    Option.isNone(username) ? "KAFKA_SASL_USERNAME" : undefined,
    Option.isNone(password) ? "KAFKA_SASL_PASSWORD" : undefined
  ].filter((name) => name !== undefined)
  return Effect.fail(
    new Config.ConfigError(
      new ConfigProvider.SourceError({
        message: `Kafka SASL needs KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD together; missing ${missing.join(", ")}`
      })
    )
  )
}

/** SASL PLAIN sends the password as it is: over a connection without TLS anyone on the path reads it. */
const refusePlainInClear = <
  A extends { readonly ssl: boolean; readonly sasl: Option.Option<{ readonly mechanism: string }> }
>(
  security: A
) =>
  !security.ssl && Option.isSome(security.sasl) && security.sasl.value.mechanism === "plain"
    ? Effect.fail(
        new Config.ConfigError(
          new ConfigProvider.SourceError({
            message: "KAFKA_SASL_MECHANISM=plain sends the password in clear: set KAFKA_SSL=true, or use scram-sha-512"
          })
        )
      )
    : Effect.succeed(security)

export const kafkaSecurityConfig = Config.all({
  ssl: Config.Boolean("KAFKA_SSL").pipe(Config.withDefault(false)),
  ca: pemFile("KAFKA_SSL_CA_FILE"),
  certificate: pemFile("KAFKA_SSL_CERT_FILE"),
  key: pemFile("KAFKA_SSL_KEY_FILE"),
  sasl: Config.all({
    mechanism: Config.option(Config.Literals(kafkaSaslMechanisms, "KAFKA_SASL_MECHANISM")),
    username: Config.option(Config.String("KAFKA_SASL_USERNAME")),
    password: Config.option(Config.Redacted("KAFKA_SASL_PASSWORD"))
  }).pipe(Config.mapEffect(saslOf))
}).pipe(Config.mapEffect(refusePlainInClear))
export type KafkaSecurity = Config.Success<typeof kafkaSecurityConfig>

/** No TLS, no SASL: a broker on a trusted network (tests, development). */
export const plaintext: KafkaSecurity = {
  ssl: false,
  ca: Option.none(),
  certificate: Option.none(),
  key: Option.none(),
  sasl: Option.none()
}

/** The `ssl` and `sasl` options of `new Kafka(...)` for `security`. */
export const kafkaClientSecurity = (
  security: KafkaSecurity
): { readonly ssl?: ConnectionOptions; readonly sasl?: SASLOptions } => {
  const tls: ConnectionOptions = {
    rejectUnauthorized: true,
    ...Option.match(security.ca, { onNone: () => ({}), onSome: (ca) => ({ ca }) }),
    ...Option.match(security.certificate, { onNone: () => ({}), onSome: (cert) => ({ cert }) }),
    ...Option.match(security.key, { onNone: () => ({}), onSome: (key) => ({ key }) })
  }
  return {
    ...(security.ssl ? { ssl: tls } : {}),
    ...Option.match(security.sasl, {
      onNone: () => ({}),
      onSome: ({ mechanism, username, password }) => ({
        sasl: { mechanism, username, password: Redacted.value(password) } as SASLOptions
      })
    })
  }
}

/** What the start-up log says about the connection (never the password). */
export const describeKafkaSecurity = (security: KafkaSecurity): string =>
  [
    security.ssl ? `TLS${Option.isSome(security.ca) ? " (KAFKA_SSL_CA_FILE)" : ""}` : "no TLS",
    Option.match(security.sasl, {
      onNone: () => "no SASL",
      onSome: ({ mechanism, username }) => `SASL ${mechanism} as ${username}`
    })
  ].join(", ")
