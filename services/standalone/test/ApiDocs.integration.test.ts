import { copyFileSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { makeDexMonProcessWith, openInChromium, tempDir } from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"

/** Scalar's bundled script inside `effect/http-api`: 3 MB of JavaScript, some 13 MB resident once loaded. */
const SCALAR_BUNDLE = "/http-api/internal/httpApiScalar.js"

/** A preload that appends to `file` the URL of every module the process resolves whose URL contains `part`. */
const recordResolved = (file: string, part: string) =>
  `--import=data:text/javascript,${encodeURIComponent(`
import { registerHooks } from "node:module"
import { appendFileSync } from "node:fs"
registerHooks({
  resolve(specifier, context, next) {
    const result = next(specifier, context)
    if (result.url.includes(${JSON.stringify(part)})) appendFileSync(${JSON.stringify(file)}, result.url + "\\n")
    return result
  }
})`)}`

describe("the API reference at /docs", () => {
  it.live(
    "Scalar's script is loaded by the first request for the page, not at start-up; the page holds the served API document and Chromium renders it",
    () =>
      Effect.gen(function* () {
        const resolvedFile = join(yield* tempDir("docs"), "resolved.txt")
        const resolved = () => {
          try {
            return readFileSync(resolvedFile, "utf8")
          } catch {
            return ""
          }
        }
        const dexmon = yield* makeDexMonProcessWith({
          SECURITY_DISABLED: "true",
          NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} ${recordResolved(resolvedFile, "/http-api/")}`
        })
        yield* dexmon.start
        // The probe works (the builder is resolved at start-up), and the bundle is not.
        assert.include(resolved(), "/http-api/HttpApiBuilder.js")
        assert.notInclude(resolved(), SCALAR_BUNDLE)

        const get = (path: string) =>
          Effect.promise(async () => {
            const response = await fetch(`${dexmon.baseUrl}${path}`)
            return { status: response.status, type: response.headers.get("content-type"), body: await response.text() }
          })
        const page = yield* get("/docs")
        assert.strictEqual(page.status, 200)
        assert.match(page.type ?? "", /^text\/html/)
        assert.include(page.body, "Scalar.createApiReference")
        assert.include(resolved(), SCALAR_BUNDLE)
        // The page carries the same document as /openapi.json: every path it serves.
        const document = JSON.parse((yield* get("/openapi.json")).body) as { paths: Record<string, unknown> }
        for (const path of Object.keys(document.paths)) assert.include(page.body, JSON.stringify(path), path)
        // Built once: a second request gets the same page.
        assert.strictEqual((yield* get("/docs")).body, page.body)

        // As a person sees it: Chromium runs Scalar's script, which renders the reference from the document.
        // The page's scripts carry the document's text too, so only what is outside them counts as rendered.
        const opened = yield* openInChromium("api-docs.html", page.body, {
          width: 1280,
          height: 900,
          scriptMillis: 10_000
        })
        const rendered = opened.dom.replace(/<script[\s\S]*?<\/script>/g, "")
        assert.notInclude(rendered, "createApiReference", "the scripts are stripped")
        for (const text of ["Post one manual (finger-stick) reading", "Alert settings", "/api/v1/glucose/sensor"]) {
          assert.include(rendered, text)
        }
        assert.isAbove(opened.screenshotBytes, 40_000, "the reference drawn, not a blank page")
        // The README shows the screenshot of this run's page when asked to (DEXMON_UPDATE_README_SCREENSHOT=1).
        if (process.env.DEXMON_UPDATE_README_SCREENSHOT === "1") {
          copyFileSync(opened.screenshot, fileURLToPath(new URL("../../../docs/api-docs.png", import.meta.url)))
        }
      }),
    120_000
  )
})
