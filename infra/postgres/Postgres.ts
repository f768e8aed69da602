// The machine's PostgreSQL for the integration tests of the readings store: the
// machines run PostgreSQL 15 on 127.0.0.1:5432 with trust auth. Nothing is
// started here; `up` checks that it answers (starting the Debian cluster if it
// is installed but stopped) and hands its URL to the tests, which create a
// database of their own per run.
import { acceptsTcp, log, runCommand, seconds } from "../Processes.ts"

const DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/postgres"

export const upPostgres = async (): Promise<Record<string, string>> => {
  const started = performance.now()
  const url = process.env.DATABASE_URL || DEFAULT_URL
  const { hostname, port } = new URL(url)
  if (!(await acceptsTcp(hostname, Number(port || 5432)))) {
    log(`postgres: ${hostname}:${port} does not answer; starting the Debian cluster`)
    const clusters = await runCommand("sh", ["-c", "ls /etc/postgresql"])
    const version = clusters.output.trim().split("\n")[0]
    if (clusters.exitCode !== 0 || version === undefined || version === "") {
      throw new Error(`no PostgreSQL answers on ${hostname}:${port} and none is installed here; set DATABASE_URL`)
    }
    const start = await runCommand("pg_ctlcluster", ["--skip-systemctl-redirect", version, "main", "start"])
    if (start.exitCode !== 0 || !(await acceptsTcp(hostname, Number(port || 5432), 10_000))) {
      throw new Error(`PostgreSQL ${version} did not start: ${start.output}`)
    }
  }
  log(`postgres: ${hostname}:${port || 5432} answers (${seconds(performance.now() - started)})`)
  return { DATABASE_URL: url }
}
