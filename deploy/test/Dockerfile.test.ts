import { describe, expect, it } from "vitest"
import { STANDALONE_NODE_OPTIONS } from "../NodeOptions.ts"
import { readText } from "./support/Files.ts"

/** The Dockerfile's instructions, continuation lines joined, comments dropped. */
const instructions = readText("Dockerfile")
  .replace(/\\\n/g, " ")
  .split("\n")
  .map((line) => line.trim())
  .filter((line) => line !== "" && !line.startsWith("#"))
const ofKind = (keyword: string) => instructions.filter((line) => line.startsWith(`${keyword} `))

describe("Dockerfile", () => {
  it("builds on node:24-slim with pnpm from corepack and the frozen lockfile", () => {
    expect(ofKind("FROM")).toEqual(["FROM node:24-slim"])
    expect(instructions.some((line) => /corepack enable/.test(line))).toBe(true)
    expect(ofKind("COPY").some((line) => line.includes("pnpm-lock.yaml"))).toBe(true)
    expect(ofKind("RUN").some((line) => /pnpm install --frozen-lockfile --prod=false/.test(line))).toBe(true)
    expect(ofKind("COPY")).toContain("COPY . .")
  })

  it("runs as a numeric non-root user, with the standalone entry point as the default command, as pnpm start runs it", () => {
    const [user] = ofKind("USER")
    expect(user).toMatch(/^USER [1-9]\d*(:\d+)?$/)
    expect(instructions.indexOf(user!)).toBeGreaterThan(instructions.findIndex((line) => line.includes("pnpm install")))
    const options = STANDALONE_NODE_OPTIONS.split(" ")
    const [command] = ofKind("CMD")
    expect(JSON.parse(command!.slice("CMD ".length))).toEqual(["node", ...options, "services/standalone/src/main.ts"])
    const scripts = (JSON.parse(readText("package.json")) as { scripts: Record<string, string> }).scripts
    expect(scripts.start).toBe(["node", ...options, "services/standalone/src/main.ts"].join(" "))
    expect(ofKind("ENV").join(" ")).toContain("HOST=0.0.0.0")
  })

  it("leaves local state, tooling and installed modules out of the build context", () => {
    const ignored = readText(".dockerignore")
      .split("\n")
      .map((line) => line.trim())
    for (const entry of [".data", ".infra", ".tools", "node_modules", "**/node_modules", ".git", "coverage", "*.log"]) {
      expect(ignored, entry).toContain(entry)
    }
  })
})
