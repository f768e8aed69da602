import { beforeAll, describe, expect, it } from "vitest"
import { exportedSeriesNames } from "./support/ExportedMetrics.ts"
import { asArray, asObject, filesIn, isObject, readText, readYaml } from "./support/Files.ts"
import { expressionsIn, namesIn, PROMQL_FUNCTIONS } from "./support/PromQL.ts"

/**
 * Dashboards and alert rules may name only series the services export: a
 * renamed metric otherwise leaves an empty panel or an alert that never fires,
 * and nothing says so.
 */
const DASHBOARDS = "deploy/grafana/dashboards"
const RULES = "deploy/prometheus/alerts.yml"

const dashboards = filesIn(DASHBOARDS, ".json").map((name) => ({
  path: `${DASHBOARDS}/${name}`,
  json: JSON.parse(readText(`${DASHBOARDS}/${name}`)) as unknown
}))
const rules = readYaml(RULES)

/** Series names recorded by recording rules, which other expressions may use too. */
const recordedNames = asArray(asObject(rules, RULES).groups, "groups").flatMap((group) =>
  asArray(asObject(group, "group").rules, "rules").flatMap((rule) => {
    const record = asObject(rule, "rule").record
    return typeof record === "string" ? [record] : []
  })
)

/** Each expression with the names it uses that are neither exported nor PromQL. */
const unknownNames = (expressions: Array<string>, exported: ReadonlySet<string>) =>
  expressions.flatMap((expr) => {
    const { metrics, functions } = namesIn(expr)
    const unknownMetrics = metrics.filter((name) => !exported.has(name) && !recordedNames.includes(name))
    const unknownFunctions = functions.filter((name) => !PROMQL_FUNCTIONS.has(name))
    return unknownMetrics.length + unknownFunctions.length === 0 ? [] : [{ expr, unknownMetrics, unknownFunctions }]
  })

describe("metric names in dashboards and alert rules", () => {
  let exported: ReadonlySet<string>
  beforeAll(async () => {
    exported = await exportedSeriesNames()
  })

  it("the exported set is DexMon's registry (the README's metrics table, histograms expanded)", () => {
    for (const name of [
      "http_requests_total",
      "http_request_duration_seconds_bucket",
      "dexmon_events_produced_total",
      "dexmon_events_consumed_total",
      "dexmon_consumer_lag",
      "dexmon_dlq_messages_total",
      "dexmon_batch_size_count",
      "dexmon_store_write_duration_seconds_sum",
      "dexmon_alerts_total",
      "dexmon_notifications_total",
      "dexmon_webhook_deliveries_total",
      "dexmon_webhook_delivery_duration_seconds_bucket",
      "dexmon_archived_rows_total",
      "process_resident_memory_bytes"
    ]) {
      expect(exported, name).toContain(name)
    }
    expect(exported).not.toContain("http_request_duration_seconds")
  })

  it("a name the services do not export is reported", () => {
    expect(unknownNames(["sum(rate(dexmon_readings_stored_total[5m]))"], exported)).toEqual([
      {
        expr: "sum(rate(dexmon_readings_stored_total[5m]))",
        unknownMetrics: ["dexmon_readings_stored_total"],
        unknownFunctions: []
      }
    ])
  })

  it("there is at least one dashboard, with expressions", () => {
    expect(dashboards.length).toBeGreaterThan(0)
    for (const { path, json } of dashboards) expect(expressionsIn(json).length, path).toBeGreaterThan(0)
  })

  it.each(dashboards.map(({ path }) => path))("%s names only exported metrics", (path) => {
    const { json } = dashboards.find((dashboard) => dashboard.path === path)!
    expect(unknownNames(expressionsIn(json), exported)).toEqual([])
  })

  it("the alert rules name only exported metrics", () => {
    const expressions = expressionsIn(rules)
    expect(expressions.length).toBeGreaterThan(0)
    expect(unknownNames(expressions, exported)).toEqual([])
  })

  it("the dashboard panels cover ingest, latency, lag, dead letters, alerts, stores and the runtime", () => {
    const used = new Set(dashboards.flatMap(({ json }) => expressionsIn(json).flatMap((expr) => namesIn(expr).metrics)))
    for (const name of [
      "dexmon_events_produced_total",
      "http_requests_total",
      "http_request_duration_seconds_bucket",
      "dexmon_store_write_duration_seconds_bucket",
      "dexmon_consumer_lag",
      "dexmon_dlq_messages_total",
      "dexmon_alerts_total",
      "dexmon_notifications_total",
      "dexmon_webhook_deliveries_total",
      "process_resident_memory_bytes",
      "process_cpu_seconds_total"
    ]) {
      expect(used, name).toContain(name)
    }
  })
})

describe("alert rules", () => {
  const alerts = asArray(asObject(rules, RULES).groups, "groups").flatMap((group) =>
    asArray(asObject(group, "group").rules, "rules").map((rule) => asObject(rule, "rule"))
  )
  const byName = (name: string) => alerts.find((rule) => rule.alert === name)

  it("consumer lag high for 5 minutes, dead-letter growth over 10 minutes, and a target down", () => {
    const lag = byName("DexMonConsumerLagHigh")
    expect(lag?.for).toBe("5m")
    expect(namesIn(String(lag?.expr)).metrics).toEqual(["dexmon_consumer_lag"])

    // Every dead-letter topic but the webhook deliveries', which page through a rule of their own.
    const deadLetters = byName("DexMonDeadLetters")
    expect(String(deadLetters?.expr)).toMatch(/increase\(dexmon_dlq_messages_total\{topic!~"[^"]+"\}\[10m\]\)\) > 0/)
    const deliveries = byName("DexMonWebhookDeliveriesDeadLettered")
    expect(String(deliveries?.expr)).toMatch(/dexmon_dlq_messages_total\{topic=~"[^"]*delivery[^"]*"\}/)
    expect(namesIn(String(deliveries?.expr)).metrics).toEqual(["dexmon_dlq_messages_total"])

    const down = byName("DexMonTargetDown")
    expect(namesIn(String(down?.expr)).metrics).toEqual(["up"])
  })

  it("every alert has a severity and a summary", () => {
    for (const rule of alerts.filter((rule) => typeof rule.alert === "string")) {
      expect(asObject(rule.labels, `${rule.alert} labels`).severity, String(rule.alert)).toMatch(/^(warning|critical)$/)
      expect(asObject(rule.annotations, `${rule.alert} annotations`).summary, String(rule.alert)).toBeTypeOf("string")
    }
  })
})

describe("Grafana provisioning", () => {
  const datasources = asArray(
    asObject(readYaml("deploy/grafana/provisioning/datasources/datasources.yml"), "datasources file").datasources,
    "datasources"
  ).map((source) => asObject(source, "datasource"))

  /** Every `datasource: { uid }` in a dashboard. */
  const datasourceUids = (value: unknown): Array<string> => {
    if (Array.isArray(value)) return value.flatMap(datasourceUids)
    if (!isObject(value)) return []
    return Object.entries(value).flatMap(([key, inner]) =>
      key === "datasource" && isObject(inner) && typeof inner.uid === "string" ? [inner.uid] : datasourceUids(inner)
    )
  }

  it("every data source a dashboard names is provisioned, and Prometheus is the default", () => {
    const provisioned = new Set(datasources.map((source) => source.uid))
    for (const { path, json } of dashboards) {
      for (const uid of datasourceUids(json)) expect(provisioned, `${path} names ${uid}`).toContain(uid)
    }
    expect(datasources.find((source) => source.isDefault === true)?.type).toBe("prometheus")
  })

  it("every panel says what it measures, and dashboard uids are unique", () => {
    const uids = dashboards.map(({ json }) => asObject(json, "dashboard").uid)
    expect(new Set(uids).size).toBe(uids.length)
    for (const { path, json } of dashboards) {
      const panels = asArray(asObject(json, path).panels, `${path} panels`).map((panel) => asObject(panel, "panel"))
      for (const panel of panels.filter((panel) => panel.type !== "row")) {
        expect(String(panel.description ?? "").length, `${path}: ${panel.title}`).toBeGreaterThan(20)
      }
    }
  })

  it("the dashboards provider loads the folder compose mounts the dashboards into", () => {
    const providers = asArray(
      asObject(readYaml("deploy/grafana/provisioning/dashboards/dashboards.yml"), "dashboards file").providers,
      "providers"
    )
    const paths = providers.map((provider) => asObject(asObject(provider, "provider").options, "options").path)
    expect(paths).toContain("/var/lib/grafana/dashboards")
  })
})
