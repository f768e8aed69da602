// Command line of the real-server harness (`pnpm infra <command>`):
//   up [kafka|postgres|cassandra ...]  start (or reuse) the servers, default all; prints how long each took
//   down                               stop what `up` started and remove its data
//   env                                `export NAME=value` lines for the running servers: eval "$(pnpm -s infra env)"
//   status                             what runs, where, and whether it answers
import { allServices, down, environment, isService, type Service, status, up } from "./Harness.ts"

const usage = "usage: node infra/cli.ts up [kafka|postgres|cassandra ...] | down | env | status"

// kafkajs 2.2.4 (used for the readiness check) calls setTimeout with a negative delay, which
// Node 24 reports as a TimeoutNegativeWarning (tulios/kafkajs#1751, unfixed upstream). It is
// harmless, so this process prints every warning except that one in place of Node's default printer.
process.removeAllListeners("warning")
process.on("warning", (warning) => {
  if (warning.name !== "TimeoutNegativeWarning")
    console.error(`(node:${process.pid}) ${warning.name}: ${warning.message}`)
})

const main = async (args: ReadonlyArray<string>): Promise<number> => {
  const [command, ...rest] = args
  switch (command) {
    case "up": {
      const unknown = rest.filter((name) => !isService(name))
      if (unknown.length > 0) {
        console.error(`unknown service(s): ${unknown.join(", ")}; known: ${allServices.join(", ")}`)
        return 2
      }
      await up(rest.length === 0 ? allServices : (rest as ReadonlyArray<Service>))
      return 0
    }
    case "down":
      await down()
      return 0
    case "env":
      for (const [name, value] of Object.entries(environment())) console.log(`export ${name}=${value}`)
      return 0
    case "status":
      for (const line of await status()) console.log(line)
      return 0
    default:
      console.error(usage)
      return 2
  }
}

try {
  process.exitCode = await main(process.argv.slice(2))
} catch (error) {
  console.error(`infra: ${error instanceof Error ? error.message : String(error)}`)
  process.exitCode = 1
}
