import type { TestProjectInlineConfiguration } from "vitest/config"

/**
 * Every test project of the workspace. Vitest reads projects from the root
 * config, which loads this list; add a project here when a package gains tests.
 * Integration tests (`*.integration.test.ts`) talk to real servers that
 * `pnpm test` brings up first.
 */
const project = (name: string, root: string): TestProjectInlineConfiguration => ({
  test: {
    name,
    root,
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000
  }
})

export const projects: Array<TestProjectInlineConfiguration> = [
  project("domain", "packages/domain"),
  project("alerting", "packages/alerting"),
  project("statistics", "packages/statistics"),
  project("reports", "packages/reports"),
  project("api", "packages/api"),
  project("streams", "packages/streams"),
  project("observability", "packages/observability"),
  project("ports", "packages/ports"),
  project("archive", "packages/archive"),
  project("testing", "packages/testing"),
  project("services", "services/standalone"),
  project("receiver", "services/receiver"),
  project("nightscout", "services/nightscout"),
  project("archiver", "services/archiver"),
  project("dlq", "services/dlq"),
  project("deliverer", "services/deliverer"),
  project("deploy", "deploy")
]
