/**
 * The connection variable of a real server that an integration test needs.
 * `pnpm test` starts the servers and sets these; a test never skips for want
 * of one: it fails and says how to get it.
 */
export const requiredServer = (
  variable:
    | "KAFKA_BROKERS"
    | "DATABASE_URL"
    | "CASSANDRA_CONTACT_POINTS"
    | "S3_ENDPOINT"
    | "TIMESCALE_URL"
    | "PROMETHEUS_URL"
    | "PROMETHEUS_SD_DIR"
    | "ALERTMANAGER_URL"
    | "ALERTMANAGER_WEBHOOK_URL"
    | "PUSHGATEWAY_URL"
    | "ZIPKIN_URL"
): string => {
  const value = process.env[variable]
  if (value === undefined || value === "") {
    throw new Error(
      `${variable} is not set. Run the tests with \`pnpm test\`, which starts the servers they need (node infra/cli.ts up), or export ${variable} yourself.`
    )
  }
  return value
}
