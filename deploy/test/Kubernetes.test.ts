import { Deployment } from "kubernetes-models/apps/v1"
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2"
import { CronJob } from "kubernetes-models/batch/v1"
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1"
import { PodDisruptionBudget } from "kubernetes-models/policy/v1"
import { ConfigMap, Namespace, Secret, Service, ServiceAccount } from "kubernetes-models/v1"
import { describe, expect, it } from "vitest"
import { SERVICE_MALLOC_ENV, SERVICE_NODE_OPTIONS } from "../NodeOptions.ts"
import {
  asArray,
  asObject,
  exists,
  filesIn,
  imageTag,
  type Json,
  readYaml,
  readYamlDocuments
} from "./support/Files.ts"

/** The model class of every kind the manifests may use; any other kind fails the test. */
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  "v1/Namespace": Namespace,
  "v1/ServiceAccount": ServiceAccount,
  "v1/ConfigMap": ConfigMap,
  "v1/Secret": Secret,
  "v1/Service": Service,
  "apps/v1/Deployment": Deployment,
  "batch/v1/CronJob": CronJob,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "autoscaling/v2/HorizontalPodAutoscaler": HorizontalPodAutoscaler,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy
}
const CLUSTER_SCOPED = new Set(["Namespace"])

/** A Kubernetes memory quantity (`512Mi`, `1Gi`) in MiB. */
const mebibytes = (quantity: string) => {
  const [, amount, unit] = quantity.match(/^(\d+)(Mi|Gi)$/) ?? []
  if (amount === undefined) throw new Error(`not a Mi or Gi quantity: ${quantity}`)
  return Number(amount) * (unit === "Gi" ? 1024 : 1)
}

const KUSTOMIZATION = "kustomization.yaml"
const manifestFiles = filesIn("k8s", ".yaml").filter((name) => name !== KUSTOMIZATION)
const objects = manifestFiles.flatMap((file) =>
  readYamlDocuments(`k8s/${file}`).map((document) => ({ file, object: asObject(document, `a document of ${file}`) }))
)
const metadata = (object: Json) => asObject(object.metadata, `${object.kind} metadata`)
const ofKind = (kind: string) => objects.map(({ object }) => object).filter((object) => object.kind === kind)
const named = (kind: string, name: string) => ofKind(kind).find((object) => metadata(object).name === name)

const LONG_RUNNING = ["receiver", "processor", "notifier", "deliverer", "gateway", "nightscout"]

/** The pod spec of a Deployment or of a CronJob's jobs. */
const podSpec = (object: Json): Json => {
  const spec = asObject(object.spec, `${object.kind} spec`)
  const template =
    object.kind === "CronJob"
      ? asObject(asObject(asObject(spec.jobTemplate, "jobTemplate").spec, "job spec").template, "template")
      : asObject(spec.template, "template")
  return asObject(template.spec, "pod spec")
}
const containers = (object: Json) =>
  asArray(podSpec(object).containers, "containers").map((container) => asObject(container, "container"))
const templateLabels = (deployment: Json) =>
  asObject(asObject(asObject(asObject(deployment.spec, "spec").template, "template").metadata, "meta").labels, "labels")
const selects = (matchLabels: Json, labels: Json) =>
  Object.entries(matchLabels).every(([key, value]) => labels[key] === value)

const seconds = (duration: string) => {
  const match = /^(\d+)(s|m)$/.exec(duration)
  if (match === null) throw new Error(`not a duration: ${duration}`)
  return Number(match[1]) * (match[2] === "m" ? 60 : 1)
}

describe("k8s manifests", () => {
  it("every object validates against its Kubernetes model; no kind is unknown", () => {
    expect(objects.length).toBeGreaterThan(0)
    for (const { file, object } of objects) {
      const key = `${object.apiVersion}/${object.kind}`
      const Model = MODELS[key]
      if (Model === undefined) throw new Error(`${file}: no model for ${key}`)
      expect(() => new Model(object as never).validate(), `${file} ${key} ${metadata(object).name}`).not.toThrow()
    }
  })

  it("the model check is real: a wrongly typed field fails", () => {
    const deployment = structuredClone(named("Deployment", "receiver")!)
    asObject(deployment.spec, "spec").revisionHistoryLimit = "five"
    expect(() => new Deployment(deployment as never).validate()).toThrow(/revisionHistoryLimit/)
  })

  it("every namespaced object is in the dexmon namespace", () => {
    for (const { file, object } of objects) {
      if (CLUSTER_SCOPED.has(String(object.kind))) continue
      expect(metadata(object).namespace, `${file} ${object.kind} ${metadata(object).name}`).toBe("dexmon")
    }
    expect(named("Namespace", "dexmon")).toBeDefined()
  })

  it("the kustomization lists every manifest file exactly once", () => {
    const kustomization = asObject(readYaml(`k8s/${KUSTOMIZATION}`), KUSTOMIZATION)
    expect(kustomization.namespace).toBe("dexmon")
    const resources = asArray(kustomization.resources, "resources").map(String)
    expect([...resources].sort()).toEqual(manifestFiles)
    expect(new Set(resources).size).toBe(resources.length)
  })

  it("a Deployment per long-running service, the archiver as a CronJob", () => {
    expect(
      ofKind("Deployment")
        .map((deployment) => metadata(deployment).name)
        .sort()
    ).toEqual([...LONG_RUNNING].sort())
    const archiver = named("CronJob", "archiver")!
    expect(archiver).toBeDefined()
    const spec = asObject(archiver.spec, "archiver spec")
    expect(spec.concurrencyPolicy).toBe("Forbid")
    expect(podSpec(archiver).restartPolicy).toBe("Never")
    expect(containers(archiver)[0]?.command).toEqual(["node", "services/archiver/src/main.ts"])
  })

  it("each Deployment runs its own entry point, with readiness on /readyz and liveness on /healthz", () => {
    for (const name of LONG_RUNNING) {
      const [container] = containers(named("Deployment", name)!)
      expect(container?.command, name).toEqual(["node", `services/${name}/src/main.ts`])
      expect(exists(`services/${name}/src/main.ts`)).toBe(true)
      const probe = (which: string) => asObject(asObject(container?.[which], `${name} ${which}`).httpGet, "httpGet")
      expect(probe("readinessProbe").path, name).toBe("/readyz")
      expect(probe("livenessProbe").path, name).toBe("/healthz")
    }
  })

  it("every container has resource requests and limits and a locked-down security context", () => {
    for (const workload of [...ofKind("Deployment"), ...ofKind("CronJob")]) {
      const name = String(metadata(workload).name)
      const pod = podSpec(workload)
      expect(asObject(pod.securityContext, `${name} pod securityContext`).runAsNonRoot, name).toBe(true)
      const tmpVolumes = asArray(pod.volumes, `${name} volumes`)
        .map((volume) => asObject(volume, "volume"))
        .filter((volume) => volume.emptyDir !== undefined)
        .map((volume) => volume.name)
      for (const container of containers(workload)) {
        const resources = asObject(container.resources, `${name} resources`)
        for (const bound of ["requests", "limits"]) {
          const values = asObject(resources[bound], `${name} ${bound}`)
          expect(values.cpu, `${name} ${bound}.cpu`).toBeDefined()
          expect(values.memory, `${name} ${bound}.memory`).toBeDefined()
        }
        const security = asObject(container.securityContext, `${name} securityContext`)
        expect(security.readOnlyRootFilesystem, name).toBe(true)
        expect(security.allowPrivilegeEscalation, name).toBe(false)
        expect(asObject(security.capabilities, "capabilities").drop).toEqual(["ALL"])
        const tmp = asArray(container.volumeMounts, `${name} volumeMounts`)
          .map((mount) => asObject(mount, "mount"))
          .find((mount) => mount.mountPath === "/tmp")
        expect(tmpVolumes, `${name} /tmp is an emptyDir`).toContain(tmp?.name)
        const tag = imageTag(String(container.image))
        expect(tag, `${name} image`).toBeDefined()
        expect(tag, `${name} image`).not.toMatch(/latest/)
      }
    }
  })

  it("shutdown fits the grace period: preStop pause plus DEXMON_SHUTDOWN_TIMEOUT below terminationGracePeriodSeconds", () => {
    const config = asObject(named("ConfigMap", "dexmon-config")!.data, "config data")
    expect(config.DEXMON_PROFILE).toBe("production")
    const shutdown = seconds(String(config.DEXMON_SHUTDOWN_TIMEOUT))
    for (const deployment of ofKind("Deployment")) {
      const name = String(metadata(deployment).name)
      const grace = Number(podSpec(deployment).terminationGracePeriodSeconds)
      const preStop = containers(deployment)[0]?.lifecycle
      const pause = preStop === undefined ? 0 : Number(JSON.stringify(preStop).match(/"sleep","(\d+)"/)?.[1] ?? 0)
      expect(pause + shutdown, name).toBeLessThan(grace)
    }
  })

  it("every workload takes the V8 options and malloc settings of deploy/NodeOptions.ts, and its memory limit has room for that heap", () => {
    const config = asObject(named("ConfigMap", "dexmon-config")!.data, "config data")
    expect(config.NODE_OPTIONS).toBe(SERVICE_NODE_OPTIONS)
    for (const [variable, value] of Object.entries(SERVICE_MALLOC_ENV)) expect(config[variable], variable).toBe(value)
    const oldSpace = Number(SERVICE_NODE_OPTIONS.match(/--max-old-space-size=(\d+)/)?.[1])
    for (const workload of [...ofKind("Deployment"), ...ofKind("CronJob")]) {
      const name = String(metadata(workload).name)
      for (const container of containers(workload)) {
        const sources = asArray(container.envFrom ?? [], "envFrom").map((entry) => asObject(entry, "envFrom"))
        expect(
          sources.some((source) => asObject(source.configMapRef ?? {}, "ref").name === "dexmon-config"),
          name
        ).toBe(true)
        // The archiver holds whole archive groups in memory: V8's defaults, sized to its container's limit.
        const own = asArray(container.env ?? [], "env")
          .map((entry) => asObject(entry, "env"))
          .find((variable) => variable.name === "NODE_OPTIONS")
        expect(own?.value, name).toBe(name === "archiver" ? "" : undefined)
        if (name === "archiver") continue
        // The old generation, the young one, code and the driver buffers beside them: at least twice the heap.
        const limit = asObject(asObject(container.resources, "resources").limits, "limits").memory
        expect(mebibytes(String(limit)), `${name} limits.memory`).toBeGreaterThanOrEqual(2 * oldSpace)
      }
    }
  })

  it("each Deployment is scraped by Prometheus on 8080 and its selector matches its pods", () => {
    for (const deployment of ofKind("Deployment")) {
      const name = String(metadata(deployment).name)
      const template = asObject(asObject(deployment.spec, "spec").template, "template")
      const annotations = asObject(asObject(template.metadata, "template metadata").annotations, `${name} annotations`)
      expect(annotations["prometheus.io/scrape"], name).toBe("true")
      expect(annotations["prometheus.io/port"], name).toBe("8080")
      const selector = asObject(asObject(asObject(deployment.spec, "spec").selector, "selector").matchLabels, "match")
      expect(selects(selector, templateLabels(deployment)), name).toBe(true)
    }
  })

  it("each Deployment has a PodDisruptionBudget (minAvailable 1) and a CPU HorizontalPodAutoscaler of at least 2", () => {
    for (const deployment of ofKind("Deployment")) {
      const name = String(metadata(deployment).name)
      const labels = templateLabels(deployment)
      const budgets = ofKind("PodDisruptionBudget").filter((budget) => {
        const spec = asObject(budget.spec, "pdb spec")
        return selects(asObject(asObject(spec.selector, "selector").matchLabels, "match"), labels)
      })
      expect(budgets.length, `${name} PodDisruptionBudget`).toBe(1)
      expect(asObject(budgets[0]!.spec, "pdb spec").minAvailable, name).toBe(1)

      const autoscalers = ofKind("HorizontalPodAutoscaler").filter((hpa) => {
        const target = asObject(asObject(hpa.spec, "hpa spec").scaleTargetRef, "scaleTargetRef")
        return target.kind === "Deployment" && target.name === name
      })
      expect(autoscalers.length, `${name} HorizontalPodAutoscaler`).toBe(1)
      const spec = asObject(autoscalers[0]!.spec, "hpa spec")
      // With one replica, minAvailable 1 would block every voluntary eviction.
      expect(Number(spec.minReplicas), name).toBeGreaterThanOrEqual(2)
      const metric = asObject(asArray(spec.metrics, "metrics")[0], "metric")
      expect(asObject(metric.resource, "resource").name, name).toBe("cpu")
    }
  })

  it("the receiver and the gateway have a Service that selects their pods on the http port", () => {
    for (const name of ["receiver", "gateway", "nightscout"]) {
      const service = named("Service", name)!
      expect(service, name).toBeDefined()
      const spec = asObject(service.spec, "service spec")
      expect(selects(asObject(spec.selector, "selector"), templateLabels(named("Deployment", name)!)), name).toBe(true)
      const ports = containers(named("Deployment", name)!)[0]?.ports
      const portNames = asArray(ports, "ports").map((port) => asObject(port, "port").name)
      for (const port of asArray(spec.ports, "service ports")) {
        expect(portNames, name).toContain(asObject(port, "service port").targetPort)
      }
    }
  })

  it("every Secret key and ConfigMap a pod refers to exists", () => {
    const secret = asObject(named("Secret", "dexmon-secrets")!.stringData, "stringData")
    for (const workload of [...ofKind("Deployment"), ...ofKind("CronJob")]) {
      for (const container of containers(workload)) {
        for (const source of asArray(container.envFrom ?? [], "envFrom").map((entry) => asObject(entry, "envFrom"))) {
          if (source.configMapRef !== undefined) {
            expect(named("ConfigMap", String(asObject(source.configMapRef, "ref").name))).toBeDefined()
          }
        }
        for (const variable of asArray(container.env ?? [], "env").map((entry) => asObject(entry, "env"))) {
          if (variable.valueFrom === undefined) continue
          const ref = asObject(asObject(variable.valueFrom, "valueFrom").secretKeyRef, "secretKeyRef")
          expect(ref.name).toBe("dexmon-secrets")
          expect(Object.keys(secret), `${variable.name}`).toContain(ref.key)
        }
      }
    }
  })

  it("ingress is denied by default, open on 8080 to the receiver, the gateway and the Nightscout API, and to Prometheus from monitoring", () => {
    const policies = ofKind("NetworkPolicy").map((policy) => asObject(policy.spec, "policy spec"))
    const denyAll = policies.find(
      (spec) => Object.keys(asObject(spec.podSelector, "podSelector")).length === 0 && spec.ingress === undefined
    )
    expect(denyAll?.policyTypes).toEqual(["Ingress"])

    const publicPolicy = policies.find((spec) => JSON.stringify(spec.podSelector).includes("receiver"))!
    expect(JSON.stringify(publicPolicy.podSelector)).toContain("gateway")
    expect(JSON.stringify(publicPolicy.podSelector)).toContain("nightscout")
    const publicRule = asObject(asArray(publicPolicy.ingress, "ingress")[0], "rule")
    expect(publicRule.from).toBeUndefined()
    expect(publicRule.ports).toEqual([{ protocol: "TCP", port: 8080 }])

    const scrape = policies.find((spec) => JSON.stringify(spec.ingress ?? []).includes("monitoring"))!
    expect(Object.keys(asObject(scrape.podSelector, "podSelector"))).toEqual([])
    expect(asObject(asArray(scrape.ingress, "ingress")[0], "rule").ports).toEqual([{ protocol: "TCP", port: 8080 }])
  })
})
