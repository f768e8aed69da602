import { describe, expect, it } from "vitest"
import { asArray, asObject, type Json, readText, readYaml } from "./support/Files.ts"

const WORKFLOW = ".github/workflows/ci.yml"
const workflow = asObject(readYaml(WORKFLOW), WORKFLOW)
const jobs = Object.values(asObject(workflow.jobs, "jobs")).map((job) => asObject(job, "job"))
const steps = (job: Json) => asArray(job.steps, "steps").map((step) => asObject(step, "step"))
const testJob = jobs.find((job) => steps(job).some((step) => step.run === "bash .ci/run"))

describe(WORKFLOW, () => {
  it("runs on push and on pull requests", () => {
    expect(Object.keys(asObject(workflow.on, "on")).sort()).toEqual(["pull_request", "push"])
  })

  it("runs the README's test command, `bash .ci/run`, which runs `pnpm test`", () => {
    expect(testJob).toBeDefined()
    expect(readText(".ci/run")).toMatch(/^pnpm test$/m)
  })

  it("on ubuntu-latest with a 90-minute limit, Java 17 (Temurin) and Node 20 set up first", () => {
    const job = testJob!
    expect(job["runs-on"]).toBe("ubuntu-latest")
    expect(job["timeout-minutes"]).toBe(90)
    const all = steps(job)
    const index = (action: string) => all.findIndex((step) => String(step.uses ?? "").startsWith(`${action}@`))
    const run = all.findIndex((step) => step.run === "bash .ci/run")
    const java = all[index("actions/setup-java")]
    expect(asObject(java?.with, "setup-java with")).toMatchObject({ distribution: "temurin", "java-version": "17" })
    expect(asObject(all[index("actions/setup-node")]?.with, "setup-node with")["node-version"]).toBe("20")
    expect(index("actions/checkout")).toBeGreaterThanOrEqual(0)
    for (const action of ["actions/checkout", "actions/setup-java", "actions/setup-node"]) {
      expect(index(action), action).toBeLessThan(run)
    }
  })

  it("with the PostgreSQL 15 the tests expect on 127.0.0.1:5432, trust auth", () => {
    const postgres = asObject(asObject(testJob!.services, "services").postgres, "postgres service")
    expect(postgres.image).toBe("postgres:15")
    expect(asObject(postgres.env, "postgres env").POSTGRES_HOST_AUTH_METHOD).toBe("trust")
    expect(postgres.ports).toEqual(["5432:5432"])
  })
})
