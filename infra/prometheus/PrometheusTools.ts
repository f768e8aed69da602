// Prometheus, its rule tester (promtool), Alertmanager and the Pushgateway for the observability tests: Debian's
// packages `prometheus`, `prometheus-alertmanager` and `prometheus-pushgateway` (Go binaries that need only libc),
// fetched with `apt-get download` and unpacked with `dpkg -x` under .infra/prometheus/<version>/, as kcat is.
// None needs root or a service manager: the tests run the binaries with flags.
import { existsSync, rmSync } from "node:fs"
import { join } from "node:path"
import { fetchIntoPlace, fetchPackages, upstreamVersion } from "../debian/DebianPackages.ts"
import { log, runCommand, seconds, tailOfText } from "../Processes.ts"
import { infraDirectory } from "../State.ts"

/** Debian 12's Prometheus; override with DEXMON_PROMETHEUS_VERSION when the machine's apt offers another. */
export const defaultPrometheusVersion = "2.42.0"
const packages = ["prometheus", "prometheus-alertmanager", "prometheus-pushgateway"] as const

const prometheusDirectory = join(infraDirectory, "prometheus")

export const prometheusVersion = (): string => process.env.DEXMON_PROMETHEUS_VERSION || defaultPrometheusVersion

export interface PrometheusTools {
  /** Absolute paths of the binaries. */
  readonly prometheus: string
  readonly promtool: string
  readonly alertmanager: string
  readonly pushgateway: string
  /** The folder holding all four (as Debian names them: `prometheus-alertmanager`, `prometheus-pushgateway`). */
  readonly binDirectory: string
  /** What their `--version` lines say: "prometheus 2.42.0, alertmanager 0.25.0, pushgateway 1.5.1". */
  readonly version: string
  /** True when this call fetched them (the first use on this machine). */
  readonly downloaded: boolean
}

let pending: Promise<PrometheusTools> | undefined

/**
 * The four binaries, ready to run, unpacked under .infra/prometheus/<version>/ and fetched first if they are
 * not there yet; every answer has run each one's `--version`. Safe to call from several processes at once
 * (each fetches into a folder of its own and renames it into place; the first rename wins) and many times in
 * one. A failure says which command failed and what it printed.
 */
export const ensurePrometheusTools = (): Promise<PrometheusTools> => {
  pending ??= unpackedPrometheusTools(join(prometheusDirectory, prometheusVersion()), prometheusVersion()).catch(
    (error: unknown) => {
      pending = undefined
      throw new Error(
        `the harness could not provide Prometheus' tools: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error }
      )
    }
  )
  return pending
}

const binariesOf = (directory: string) => {
  const bin = join(directory, "root", "usr", "bin")
  return {
    binDirectory: bin,
    prometheus: join(bin, "prometheus"),
    promtool: join(bin, "promtool"),
    alertmanager: join(bin, "prometheus-alertmanager"),
    pushgateway: join(bin, "prometheus-pushgateway")
  }
}

/** The tools of `version` unpacked in `versionDirectory` (`root/` as `dpkg -x` leaves it), fetched when missing. */
export const unpackedPrometheusTools = async (versionDirectory: string, version: string): Promise<PrometheusTools> => {
  if (existsSync(binariesOf(versionDirectory).promtool)) return verified(versionDirectory, false)
  const started = performance.now()
  log(`prometheus ${version}: fetching ${packages.join(", ")} with apt-get download into ${versionDirectory}`)
  await fetchIntoPlace(
    versionDirectory,
    async (partial) => {
      await fetchPackages({
        packages,
        main: "prometheus",
        version,
        versionVariable: "DEXMON_PROMETHEUS_VERSION",
        directory: partial
      })
      rmSync(join(partial, "debs"), { recursive: true, force: true })
    },
    (partial) => verified(partial, true)
  )
  const tools = await verified(versionDirectory, true)
  log(`prometheus ${version} ready in ${seconds(performance.now() - started)}: ${tools.version} (${versionDirectory})`)
  return tools
}

/** Runs each binary's `--version`; throws with what it printed when one does not run. */
const verified = async (directory: string, downloaded: boolean): Promise<PrometheusTools> => {
  const binaries = binariesOf(directory)
  const versionOf = async (name: string, command: string) => {
    const result = await runCommand(command, ["--version"]).catch((error: unknown) => ({
      exitCode: null,
      output: error instanceof Error ? error.message : String(error)
    }))
    if (result.exitCode !== 0) {
      throw new Error(
        `${command} --version failed (exit ${result.exitCode}):\n${tailOfText(result.output, 20)}` +
          (downloaded ? "" : `\n(remove ${directory} to fetch it again)`)
      )
    }
    // "prometheus, version 2.42.0+ds (branch: ...)" and the like.
    const found = /version (\S+)/.exec(result.output)?.[1]
    return `${name} ${found === undefined ? "?" : upstreamVersion(found)}`
  }
  const versions = [
    await versionOf("prometheus", binaries.prometheus),
    await versionOf("promtool", binaries.promtool),
    await versionOf("alertmanager", binaries.alertmanager),
    await versionOf("pushgateway", binaries.pushgateway)
  ]
  return { ...binaries, version: versions.filter((line) => !line.startsWith("promtool")).join(", "), downloaded }
}

/** One line for `infra status`, without fetching anything. */
export const prometheusToolsStatus = async (): Promise<string> => {
  const versionDirectory = join(prometheusDirectory, prometheusVersion())
  if (!existsSync(binariesOf(versionDirectory).promtool)) {
    return "prometheus: not fetched yet (`up prometheus` or the first test that needs it fetches it)"
  }
  return verified(versionDirectory, false).then(
    (tools) => `prometheus: ${tools.version}, unpacked in ${versionDirectory}`,
    (error: unknown) =>
      `prometheus: fetched into ${versionDirectory} but does NOT run: ${error instanceof Error ? error.message : String(error)}`
  )
}
