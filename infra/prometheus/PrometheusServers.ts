// Prometheus, Alertmanager and the Pushgateway as servers for the observability tests (`up observability`):
// Debian's binaries (fetched by PrometheusTools.ts) run detached on loopback, their configuration and data in
// one folder under .infra/observability that `down` removes.
//
// - Prometheus runs a configuration derived from deploy/prometheus/prometheus.yml: the compose host names are
//   replaced by a file_sd folder (PROMETHEUS_SD_DIR: a test writes `[{"targets": ["127.0.0.1:<port>"],
//   "labels": {"job": "<name>"}}]` there to be scraped), the Pushgateway's and Prometheus' own targets by their
//   loopback ports, the intervals shortened to a second; it loads deploy/prometheus/alerts.yml with each rule's
//   `for` read in seconds instead of minutes (5m waits 5 s), and sends its alerts to the Alertmanager.
// - Alertmanager groups and repeats within seconds and sends every notification, and every resolution, to the
//   webhook at ALERTMANAGER_WEBHOOK_URL, which a test serves while it waits for one.

import { spawn } from "node:child_process"
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync
} from "node:fs"
import { join } from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { parse, stringify } from "yaml"
import { acceptsTcp, isAlive, stopProcess, tailOfFile } from "../Processes.ts"
import { infraDirectory, repositoryRoot } from "../State.ts"
import { ensurePrometheusTools, type PrometheusTools } from "./PrometheusTools.ts"

const host = "127.0.0.1"
const readyTimeoutMs = 60_000
const observabilityDirectory = join(infraDirectory, "observability")
const deployDirectory = join(repositoryRoot, "deploy", "prometheus")

/** One server of the three: its pid and port. */
export interface ServerProcess {
  readonly pid: number
  readonly port: number
}

export interface PrometheusServersState {
  readonly version: string
  readonly prometheus: ServerProcess
  readonly alertmanager: ServerProcess
  readonly pushgateway: ServerProcess
  /** Where Alertmanager sends its notifications: nothing listens there until a test does. */
  readonly webhookPort: number
  /** Configuration, logs, data and the file_sd folder; removed by `down`. */
  readonly dataDirectory: string
  readonly startedAt: string
}

const portFrom = (variable: string, fallback: number): number => {
  const configured = process.env[variable]
  const port = configured === undefined || configured === "" ? fallback : Number(configured)
  if (!Number.isInteger(port) || port <= 0 || port >= 65536) {
    throw new Error(`${variable} must be a port number below 65536, got "${configured}"`)
  }
  return port
}

/** Ports from DEXMON_PROMETHEUS_PORT, DEXMON_ALERTMANAGER_PORT, DEXMON_PUSHGATEWAY_PORT and DEXMON_ALERT_WEBHOOK_PORT. */
export const prometheusServerPorts = () => ({
  prometheus: portFrom("DEXMON_PROMETHEUS_PORT", 19190),
  pushgateway: portFrom("DEXMON_PUSHGATEWAY_PORT", 19191),
  alertmanager: portFrom("DEXMON_ALERTMANAGER_PORT", 19193),
  webhook: portFrom("DEXMON_ALERT_WEBHOOK_PORT", 19194)
})

export const sdDirectoryOf = (state: Pick<PrometheusServersState, "dataDirectory">): string =>
  join(state.dataDirectory, "file_sd")

export const prometheusServersEnvironment = (state: PrometheusServersState): Record<string, string> => ({
  PROMETHEUS_URL: `http://${host}:${state.prometheus.port}`,
  PROMETHEUS_SD_DIR: sdDirectoryOf(state),
  ALERTMANAGER_URL: `http://${host}:${state.alertmanager.port}`,
  ALERTMANAGER_WEBHOOK_URL: `http://${host}:${state.webhookPort}/alerts`,
  PUSHGATEWAY_URL: `http://${host}:${state.pushgateway.port}`
})

/** Prometheus' configuration: deploy/prometheus/prometheus.yml with loopback targets, file_sd and short intervals. */
export const harnessPrometheusConfiguration = (options: {
  readonly prometheusPort: number
  readonly pushgatewayPort: number
  readonly alertmanagerPort: number
  readonly sdDirectory: string
  readonly rulesFile: string
}): string => {
  const deployed = parse(readFileSync(join(deployDirectory, "prometheus.yml"), "utf8")) as {
    global?: Record<string, unknown>
    scrape_configs: Array<Record<string, unknown> & { job_name: string }>
  }
  const targetsOf: Record<string, (job: Record<string, unknown>) => Record<string, unknown>> = {
    dexmon: ({ static_configs: _compose, ...job }) => ({
      ...job,
      file_sd_configs: [{ files: [join(options.sdDirectory, "*.json")], refresh_interval: "1s" }]
    }),
    pushgateway: ({ static_configs: _compose, ...job }) => ({
      ...job,
      static_configs: [{ targets: [`${host}:${options.pushgatewayPort}`] }]
    }),
    prometheus: ({ static_configs: _compose, ...job }) => ({
      ...job,
      static_configs: [{ targets: [`${host}:${options.prometheusPort}`] }]
    })
  }
  const jobs = deployed.scrape_configs.map((job) => {
    const rewrite = targetsOf[job.job_name]
    if (rewrite === undefined) {
      throw new Error(`deploy/prometheus/prometheus.yml has a job the harness does not know: ${job.job_name}`)
    }
    return rewrite(job)
  })
  return stringify({
    global: { ...deployed.global, scrape_interval: "1s", evaluation_interval: "1s" },
    rule_files: [options.rulesFile],
    alerting: { alertmanagers: [{ static_configs: [{ targets: [`${host}:${options.alertmanagerPort}`] }] }] },
    scrape_configs: jobs
  })
}

/** deploy/prometheus/alerts.yml with every `for: <n>m` read as `<n>s`, so a test sees an alert fire within seconds. */
export const harnessAlertRules = (): string =>
  readFileSync(join(deployDirectory, "alerts.yml"), "utf8").replace(/^(\s+for:\s*)(\d+)m\s*$/gm, "$1$2s")

const alertmanagerConfiguration = (webhookPort: number): string =>
  stringify({
    route: {
      receiver: "test-webhook",
      group_by: ["alertname", "group", "topic", "instance"],
      group_wait: "1s",
      group_interval: "1s",
      repeat_interval: "1m"
    },
    receivers: [
      {
        name: "test-webhook",
        webhook_configs: [{ url: `http://${host}:${webhookPort}/alerts`, send_resolved: true }]
      }
    ]
  })

/**
 * Debian's Alertmanager reads its notification templates from /usr/share/prometheus/alertmanager (compiled in),
 * where its package would install it; the unpacked binary does not find it otherwise. The harness runs as root
 * on CI (as `pnpm test` does for its apt packages), so it copies the package's own files there once.
 */
const ensureAlertmanagerTemplates = (tools: PrometheusTools): void => {
  const installed = "/usr/share/prometheus/alertmanager"
  const unpacked = join(tools.binDirectory, "..", "share", "prometheus", "alertmanager")
  for (const template of ["default.tmpl", "email.tmpl"]) {
    if (existsSync(join(installed, template))) continue
    try {
      mkdirSync(installed, { recursive: true })
      copyFileSync(join(unpacked, template), join(installed, template))
    } catch (error) {
      throw new Error(
        `Alertmanager needs ${join(installed, template)} (Debian's build reads it from there): copying it from ${unpacked} ` +
          `failed (${error instanceof Error ? error.message : String(error)}); run once as root, or apt-get install prometheus-alertmanager`
      )
    }
  }
}

const spawnDetached = (command: string, args: ReadonlyArray<string>, logFile: string): number => {
  const out = openSync(logFile, "a")
  const child = spawn(command, args, { detached: true, stdio: ["ignore", out, out] })
  closeSync(out)
  child.unref()
  return child.pid!
}

/** Whether the server answers 200 at `/-/ready` (all three serve it). */
const isReady = (server: ServerProcess): Promise<boolean> =>
  fetch(`http://${host}:${server.port}/-/ready`).then(
    (response) => response.ok,
    () => false
  )

/** Polls `<url>/-/ready` until it answers 200; throws with the server's log when it dies or the time runs out. */
const waitUntilReady = async (name: string, server: ServerProcess, logFile: string): Promise<void> => {
  const deadline = Date.now() + readyTimeoutMs
  for (;;) {
    if (await isReady(server)) return
    if (!isAlive(server.pid) || Date.now() > deadline) {
      throw new Error(`${name} did not get ready on ${host}:${server.port}:\n${tailOfFile(logFile)}`)
    }
    await sleep(100)
  }
}

/** Starts the three servers on fresh folders; `onSpawned` records each pid as soon as it exists, for `down`. */
export const startPrometheusServers = async (
  onSpawned: (state: PrometheusServersState) => void
): Promise<PrometheusServersState> => {
  const tools = await ensurePrometheusTools()
  ensureAlertmanagerTemplates(tools)
  const ports = prometheusServerPorts()
  for (const [name, port] of Object.entries(ports)) {
    if (await acceptsTcp(host, port)) {
      throw new Error(`${host}:${port} (${name}) is taken: stop it or set its DEXMON_*_PORT`)
    }
  }
  mkdirSync(observabilityDirectory, { recursive: true })
  const dataDirectory = mkdtempSync(join(observabilityDirectory, "data-"))
  const sdDirectory = sdDirectoryOf({ dataDirectory })
  mkdirSync(sdDirectory)
  const rulesFile = join(dataDirectory, "alerts.yml")
  writeFileSync(rulesFile, harnessAlertRules())
  const prometheusConfig = join(dataDirectory, "prometheus.yml")
  writeFileSync(
    prometheusConfig,
    harnessPrometheusConfiguration({
      prometheusPort: ports.prometheus,
      pushgatewayPort: ports.pushgateway,
      alertmanagerPort: ports.alertmanager,
      sdDirectory,
      rulesFile
    })
  )
  const alertmanagerConfig = join(dataDirectory, "alertmanager.yml")
  writeFileSync(alertmanagerConfig, alertmanagerConfiguration(ports.webhook))

  const logOf = (name: string) => join(dataDirectory, `${name}.log`)
  let state: PrometheusServersState = {
    version: tools.version,
    prometheus: { pid: 0, port: ports.prometheus },
    alertmanager: { pid: 0, port: ports.alertmanager },
    pushgateway: { pid: 0, port: ports.pushgateway },
    webhookPort: ports.webhook,
    dataDirectory,
    startedAt: new Date().toISOString()
  }
  const started = (name: "prometheus" | "alertmanager" | "pushgateway", pid: number) => {
    state = { ...state, [name]: { ...state[name], pid } }
    onSpawned(state)
  }
  try {
    started(
      "pushgateway",
      spawnDetached(tools.pushgateway, [`--web.listen-address=${host}:${ports.pushgateway}`], logOf("pushgateway"))
    )
    started(
      "alertmanager",
      spawnDetached(
        tools.alertmanager,
        [
          `--config.file=${alertmanagerConfig}`,
          `--storage.path=${join(dataDirectory, "alertmanager")}`,
          `--web.listen-address=${host}:${ports.alertmanager}`,
          // One instance, no gossip (it would listen on every interface).
          "--cluster.listen-address="
        ],
        logOf("alertmanager")
      )
    )
    started(
      "prometheus",
      spawnDetached(
        tools.prometheus,
        [
          `--config.file=${prometheusConfig}`,
          `--storage.tsdb.path=${join(dataDirectory, "prometheus")}`,
          `--web.listen-address=${host}:${ports.prometheus}`,
          // A firing alert is sent again after 1 s rather than 1 min, so a test's webhook sees it soon.
          "--rules.alert.resend-delay=1s",
          "--enable-feature=exemplar-storage"
        ],
        logOf("prometheus")
      )
    )
    await waitUntilReady("the Pushgateway", state.pushgateway, logOf("pushgateway"))
    await waitUntilReady("Alertmanager", state.alertmanager, logOf("alertmanager"))
    await waitUntilReady("Prometheus", state.prometheus, logOf("prometheus"))
    return state
  } catch (error) {
    await stopPrometheusServers(state).catch(() => undefined)
    throw error
  }
}

export const isPrometheusServersRunning = (state: PrometheusServersState): boolean =>
  [state.prometheus, state.alertmanager, state.pushgateway].every((server) => isAlive(server.pid))

/** Whether all three answer `/-/ready`. */
export const prometheusServersAnswer = async (state: PrometheusServersState): Promise<boolean> => {
  const answers = await Promise.all([state.prometheus, state.alertmanager, state.pushgateway].map(isReady))
  return answers.every(Boolean)
}

/** SIGTERM to each, then removes their folder. */
export const stopPrometheusServers = async (state: PrometheusServersState): Promise<void> => {
  for (const server of [state.prometheus, state.alertmanager, state.pushgateway]) {
    if (server.pid > 0 && isAlive(server.pid)) await stopProcess(server.pid, 15_000)
  }
  rmSync(state.dataDirectory, { recursive: true, force: true })
}
