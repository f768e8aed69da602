import { EventLog, type EventLogError, KafkaEventLog, Topics } from "@dexmon/ports"
import { type CertificateAuthority, makeCertificateAuthority, makeServiceProcess } from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Logger, Stream } from "effect"
import * as Harness from "../../../../infra/Harness.ts"
import { makeProductionEnvironment } from "../support/Topology.ts"

/**
 * DexMon's Kafka client against a broker that authenticates (SASL/SCRAM-SHA-512), over plain TCP
 * and over TLS, configured only through the variables the services read (`KAFKA_SASL_*`, `KAFKA_SSL*`).
 * A private broker of this file's own: the shared one has no SASL listener.
 */

const USER = "dexmon-svc"
// Long and unusual, so that finding it anywhere in a log line cannot be a coincidence.
const PASSWORD = "Scram-Pa55word-7f3c91e2d4"
const WRONG_PASSWORD = "not-the-password-0b8d2c"
const TOPIC = `tls-kafka-${Date.now().toString(36)}`

/** Every log line the layer writes while it is built and used (kafkajs's own lines come through it too). */
const capturingLogger = (lines: Array<string>) =>
  Logger.layer([Logger.map(Logger.formatSimple, (line) => lines.push(line))])

/** The event log as the services build it, from these variables only, and the log lines it wrote. */
const eventLogFrom = (env: Record<string, string>, lines: Array<string>) =>
  KafkaEventLog.layer.pipe(
    Layer.provide(Topics.exactly([{ name: TOPIC, partitions: 1 }])),
    Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord({ KAFKA_CLIENT_ID: "tls-kafka-test", ...env }))),
    Layer.provide(capturingLogger(lines))
  )

/** Appends one record and reads it back through `follow` (a consumer of its own): both directions work. */
const roundTrip = Effect.gen(function* () {
  const log = yield* EventLog
  const key = `sensor-${Date.now().toString(36)}`
  const from = yield* log.endOffsets(TOPIC)
  const [position] = yield* log.append(TOPIC, [{ key, value: new TextEncoder().encode("ok"), headers: {} }])
  const [record] = yield* log.follow(TOPIC, from).pipe(
    Stream.filter((candidate) => candidate.key === key),
    Stream.take(1),
    Stream.runCollect
  )
  return { position, record }
})

describe("Kafka SASL/SCRAM-SHA-512 and TLS (issue 16)", () => {
  it.live(
    "the right password appends and reads over SASL_PLAINTEXT and SASL_SSL; a wrong password (a permanent error) or an untrusted broker certificate fails start-up, saying why; no password is ever logged",
    () =>
      Effect.gen(function* () {
        const authority: CertificateAuthority = yield* makeCertificateAuthority("kafka")
        const other = yield* makeCertificateAuthority("other")
        const brokerCertificate = yield* authority.issue("127.0.0.1", ["127.0.0.1", "localhost"])
        const kafka = yield* Effect.acquireRelease(
          Effect.promise(() =>
            Harness.privateKafka({
              scramUsers: [{ username: USER, password: PASSWORD }],
              tls: brokerCertificate
            })
          ),
          (broker) => Effect.promise(() => broker.stop())
        )
        const saslSsl = kafka.saslSslBrokers
        if (saslSsl === undefined) return yield* Effect.die(new Error("the broker has no SASL_SSL listener"))
        const scram = {
          KAFKA_SASL_MECHANISM: "scram-sha-512",
          KAFKA_SASL_USERNAME: USER,
          KAFKA_SASL_PASSWORD: PASSWORD
        }
        const lines: Array<string> = []

        // The right password, without TLS and with it (the broker's certificate checked against the test's CA).
        for (const env of [
          { KAFKA_BROKERS: kafka.saslBrokers, ...scram },
          { KAFKA_BROKERS: saslSsl, KAFKA_SSL: "true", KAFKA_SSL_CA_FILE: authority.certificateFile, ...scram }
        ]) {
          const { position, record } = yield* roundTrip.pipe(Effect.provide(eventLogFrom(env, lines)))
          assert.isDefined(position)
          assert.isDefined(record)
          assert.strictEqual(new TextDecoder().decode(record!.value), "ok")
          assert.strictEqual(record!.offset, position!.offset)
        }
        assert.isTrue(
          lines.some((line) => line.includes(`SASL scram-sha-512 as ${USER}`)),
          "the start-up line says how the service connects"
        )

        // What must not start: each fails building the layer, before any record is read, so nothing can be dead-lettered.
        const refused = (env: Record<string, string>) =>
          Effect.gen(function* () {
            const error = yield* Layer.build(eventLogFrom(env, lines)).pipe(Effect.scoped, Effect.flip)
            assert.strictEqual(error._tag, "EventLogError", `expected start-up to fail with ${JSON.stringify(env)}`)
            return error as EventLogError
          })

        const wrongPassword = yield* refused({
          KAFKA_BROKERS: kafka.saslBrokers,
          ...scram,
          KAFKA_SASL_PASSWORD: WRONG_PASSWORD
        })
        assert.match(wrongPassword.message, /authentication failed/i)
        // Retrying cannot fix a password: permanent, so a supervisor reports it rather than waits on it.
        assert.isFalse(wrongPassword.transient)

        const untrustedCa = yield* refused({
          KAFKA_BROKERS: saslSsl,
          KAFKA_SSL: "true",
          KAFKA_SSL_CA_FILE: other.certificateFile,
          ...scram
        })
        assert.match(untrustedCa.message, /certificate/i)

        // The same as a production process: the processor starts with the password over SASL_SSL, and
        // with a wrong one it exits on its own, saying why, having consumed (and dead-lettered) nothing.
        const production = yield* makeProductionEnvironment(`sasl${Date.now().toString(36)}`)
        const secured = {
          ...production.env,
          KAFKA_BROKERS: saslSsl,
          KAFKA_SSL: "true",
          KAFKA_SSL_CA_FILE: authority.certificateFile,
          ...scram
        }
        const processor = yield* makeServiceProcess("processor", secured)
        yield* processor.start
        yield* processor.stop
        const refusedProcessor = yield* makeServiceProcess("processor", {
          ...secured,
          KAFKA_SASL_PASSWORD: WRONG_PASSWORD
        })
        const ended = yield* refusedProcessor.runToExit()
        assert.notStrictEqual(ended.code, 0, "the processor ran with a wrong Kafka password")
        assert.match(ended.output, /SASL SCRAM SHA512 authentication failed/)

        for (const secret of [PASSWORD, WRONG_PASSWORD]) {
          assert.isFalse(
            lines.some((line) => line.includes(secret)),
            "a password appears in a log line"
          )
          assert.notInclude(wrongPassword.message, secret)
          assert.notInclude(processor.output(), secret, "the processor logged a password")
          assert.notInclude(ended.output, secret, "the refused processor logged a password")
        }
      }),
    { timeout: 240_000 }
  )
})
