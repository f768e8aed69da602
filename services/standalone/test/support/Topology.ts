import { authEnv, freshDatabase, makeIssuer, requiredServer } from "@dexmon/testing"
import { Effect } from "effect"

/**
 * Everything a DexMon service needs to run as production does, and nothing
 * else: the real Kafka, PostgreSQL, Cassandra and S3 of the harness (topics,
 * database, keyspace and key prefix of this run only), an OAuth issuer of the
 * test's own, and `DEXMON_PROFILE=production`, which refuses any embedded
 * fallback.
 */
export const makeProductionEnvironment = (run: string) =>
  Effect.gen(function* () {
    const issuer = yield* makeIssuer
    const database = yield* freshDatabase({ name: `dexmon_${run}` })
    const fromEnv = (prefix: string) =>
      Object.fromEntries(Object.entries(process.env).filter(([name]) => name.startsWith(prefix)))
    const env: Record<string, string | undefined> = {
      PATH: process.env.PATH,
      DEXMON_PROFILE: "production",
      DEXMON_LOG_FORMAT: "json",
      DEXMON_SHUTDOWN_TIMEOUT: "15s",
      KAFKA_BROKERS: requiredServer("KAFKA_BROKERS"),
      DEXMON_TOPIC_PREFIX: `${run}.`,
      DEXMON_PROCESSOR_GROUP: `${run}-processor`,
      DEXMON_NOTIFIER_GROUP: `${run}-notifier`,
      DATABASE_URL: database.url,
      CASSANDRA_CONTACT_POINTS: requiredServer("CASSANDRA_CONTACT_POINTS"),
      CASSANDRA_LOCAL_DC: process.env.CASSANDRA_LOCAL_DC ?? "datacenter1",
      CASSANDRA_KEYSPACE: `dexmon_${run}`,
      ...fromEnv("S3_"),
      ...fromEnv("AWS_"),
      DEXMON_ARCHIVE_PREFIX: `topology/${run}`,
      ...authEnv(issuer.jwksUrl)
    }
    requiredServer("S3_ENDPOINT")
    const key = yield* issuer.newKey("topology-key", true)
    return { env, issuer, key, database }
  })
