import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { runCommand } from "../../infra/Processes.ts"
import { ensurePrometheusTools, type PrometheusTools } from "../../infra/prometheus/PrometheusTools.ts"
import { readText, readYaml, repoPath } from "./support/Files.ts"

interface RuleFile {
  readonly groups: ReadonlyArray<{ readonly rules: ReadonlyArray<{ readonly alert?: string; readonly expr: string }> }>
}
interface RuleTests {
  readonly rule_files: ReadonlyArray<string>
  readonly tests: ReadonlyArray<{
    readonly alert_rule_test?: ReadonlyArray<{
      readonly alertname: string
      readonly exp_alerts?: ReadonlyArray<unknown>
    }>
  }>
}

const RULES = "deploy/prometheus/alerts.yml"
const RULE_TESTS = "deploy/prometheus/alerts.test.yml"

/**
 * The alert rules as Prometheus itself reads and evaluates them: `promtool` (Debian's Prometheus 2.42, fetched
 * by the harness under .infra on first use) checks the rule file and runs its unit tests, in which every rule
 * has a case that fires it and one that must not.
 */
describe("the alert rules (deploy/prometheus/alerts.yml) in promtool", () => {
  let tools: PrometheusTools
  let scratch: string
  beforeAll(async () => {
    tools = await ensurePrometheusTools()
    scratch = mkdtempSync(join(tmpdir(), "dexmon-rules-"))
  }, 120_000)
  afterAll(() => rmSync(scratch, { recursive: true, force: true }))

  const promtool = (...args: ReadonlyArray<string>) => runCommand(tools.promtool, args, { cwd: repoPath(".") })
  const alertNames = (rules: RuleFile) =>
    rules.groups.flatMap((group) => group.rules.flatMap((rule) => (rule.alert === undefined ? [] : [rule.alert])))

  it("pass `promtool check rules`, every rule found", async () => {
    const rules = readYaml(RULES) as RuleFile
    const checked = await promtool("check", "rules", RULES)
    expect(checked.exitCode, checked.output).toBe(0)
    expect(checked.output).toContain(`SUCCESS: ${alertNames(rules).length} rules found`)
  })

  it("pass their unit tests, which fire every rule and hold every rule back at least once", async () => {
    const tests = readYaml(RULE_TESTS) as RuleTests
    expect(tests.rule_files).toEqual(["alerts.yml"])
    const cases = tests.tests.flatMap((test) => test.alert_rule_test ?? [])
    for (const name of alertNames(readYaml(RULES) as RuleFile)) {
      const ofRule = cases.filter((c) => c.alertname === name)
      expect(
        ofRule.some((c) => (c.exp_alerts ?? []).length > 0),
        `${name} has a case that fires it`
      ).toBe(true)
      expect(
        ofRule.some((c) => (c.exp_alerts ?? []).length === 0),
        `${name} has a case that must not fire`
      ).toBe(true)
    }
    const tested = await promtool("test", "rules", RULE_TESTS)
    expect(tested.exitCode, tested.output).toBe(0)
    expect(tested.output).toContain("SUCCESS")
  })

  it("fail their unit tests when a rule changes: a lag threshold moved, and stale lag reports summed", async () => {
    const rules = readText(RULES)
    const mutants = {
      threshold: rules.replace(") > 5000", ") > 6000"),
      "stale reports": rules.replace("max by (group, topic, partition) (dexmon_consumer_lag)", "dexmon_consumer_lag")
    }
    copyFileSync(repoPath(RULE_TESTS), join(scratch, "alerts.test.yml"))
    for (const [name, mutant] of Object.entries(mutants)) {
      expect(mutant, name).not.toBe(rules)
      writeFileSync(join(scratch, "alerts.yml"), mutant)
      const tested = await promtool("test", "rules", join(scratch, "alerts.test.yml"))
      expect(tested.exitCode, `${name}: ${tested.output}`).not.toBe(0)
      expect(tested.output).toContain("alertname: DexMonConsumerLagHigh")
    }
  })
})
