// Command line of the real-server harness (`pnpm infra <command>`):
//   up [kafka|postgres|cassandra|s3|timescale|observability|zipkin|kcat|prometheus ...]  start (or reuse) the
//                                              servers, default kafka postgres cassandra (s3, timescale, observability
//                                              (Prometheus, Alertmanager, Pushgateway running) and zipkin only when
//                                              named); prints how long each took; kcat and prometheus (Prometheus,
//                                              promtool, Alertmanager, the Pushgateway) are tools, only when named:
//                                              fetched into .infra (kcat unless on PATH)
//   down [kafka|cassandra|s3|timescale|observability|zipkin ...]  stop what `up` started and remove its data, default all
//   env                                        `export NAME=value` lines for the running servers: eval "$(pnpm -s infra env)"
//   status                                     what runs, where, and whether it answers
import {
  allServices,
  down,
  environment,
  hideKafkajsTimerWarning,
  isService,
  isTool,
  knownServices,
  knownTools,
  type Service,
  status,
  type Tool,
  up
} from "./Harness.ts"

const usage =
  "usage: node infra/cli.ts up [kafka|postgres|cassandra|s3|timescale|observability|zipkin|kcat|prometheus ...] | down [kafka|cassandra|s3|timescale|observability|zipkin ...] | env | status"

// kafkajs is used for the readiness check.
hideKafkajsTimerWarning()

/** The services named on the command line, or undefined (after saying so) when one is unknown. */
const servicesNamed = (names: ReadonlyArray<string>): ReadonlyArray<Service> | undefined => {
  const unknown = names.filter((name) => !isService(name))
  if (unknown.length === 0) return names as ReadonlyArray<Service>
  console.error(`unknown service(s): ${unknown.join(", ")}; known: ${knownServices.join(", ")}`)
  return undefined
}

/** The services and tools named after `up`, or undefined (after saying so) when one is unknown. */
const servicesAndToolsNamed = (names: ReadonlyArray<string>): ReadonlyArray<Service | Tool> | undefined => {
  const unknown = names.filter((name) => !isService(name) && !isTool(name))
  if (unknown.length === 0) return names as ReadonlyArray<Service | Tool>
  console.error(`unknown service(s): ${unknown.join(", ")}; known: ${[...knownServices, ...knownTools].join(", ")}`)
  return undefined
}

const main = async (args: ReadonlyArray<string>): Promise<number> => {
  const [command, ...rest] = args
  switch (command) {
    case "up": {
      const services = servicesAndToolsNamed(rest)
      if (services === undefined) return 2
      await up(services.length === 0 ? allServices : services)
      return 0
    }
    case "down": {
      const services = servicesNamed(rest)
      if (services === undefined) return 2
      await down(services.length === 0 ? knownServices : services)
      return 0
    }
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
