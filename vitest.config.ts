import { defineConfig } from "vitest/config"
import { projects } from "./vitest.workspace.ts"

export default defineConfig({
  test: {
    projects,
    // Servers started by the harness are shared; files that use them run one at a time.
    fileParallelism: false
  }
})
