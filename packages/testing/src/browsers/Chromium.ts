import { spawn } from "node:child_process"
import { mkdirSync, statSync, writeFileSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { pathToFileURL } from "node:url"
import { Effect, Schema } from "effect"

export class ChromiumError extends Schema.TaggedError<ChromiumError>()("ChromiumError", { message: Schema.String }) {}

/** The flags of a headless Chromium that needs no display, GPU or network (as root in CI it needs no sandbox). */
const HEADLESS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--hide-scrollbars"]

/** Where tests leave what a person should be able to look at after the run: screenshots, rendered documents. */
export const TEST_ARTIFACTS = resolve(import.meta.dirname, "../../../../test-artifacts")

const run = (args: ReadonlyArray<string>) =>
  Effect.callback<string, ChromiumError>((resume) => {
    const child = spawn("chromium", [...HEADLESS, ...args], { stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString("utf8")
    })
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8")
    })
    child.on("error", (error) =>
      resume(
        Effect.fail(
          new ChromiumError({
            message: `chromium could not run (${error.message}): install Debian's chromium (pnpm test does, as root)`
          })
        )
      )
    )
    child.on("close", (code) =>
      resume(
        code === 0
          ? Effect.succeed(stdout)
          : Effect.fail(new ChromiumError({ message: `chromium exited with ${code}: ${stderr.slice(-2000)}` }))
      )
    )
    return Effect.sync(() => child.kill("SIGKILL"))
  })

/**
 * A document opened in headless Chromium, as a person would see it: saved under `test-artifacts/<name>`, its
 * screenshot taken at `width` × `height` beside it (`<name>.png`), and the DOM Chromium built from it (for an SVG
 * served as XML, a parse error shows there as Chromium's error page, not as the picture). A page whose script
 * renders it after loading (the API reference) names `scriptMillis`: Chromium's virtual time runs that long
 * before the DOM is read and the picture taken, so neither depends on how busy the machine is.
 */
export const openInChromium = Effect.fnUntraced(function* (
  name: string,
  content: string,
  size: { readonly width: number; readonly height: number; readonly scriptMillis?: number }
) {
  const file = join(TEST_ARTIFACTS, name)
  const screenshot = `${file}.png`
  mkdirSync(dirname(file), { recursive: true })
  writeFileSync(file, content)
  const url = pathToFileURL(file).href
  const settle = size.scriptMillis === undefined ? [] : [`--virtual-time-budget=${size.scriptMillis}`]
  const dom = yield* run([...settle, "--dump-dom", url])
  yield* run([...settle, `--screenshot=${screenshot}`, `--window-size=${size.width},${size.height}`, url])
  return { file, screenshot, screenshotBytes: statSync(screenshot).size, dom }
})

/**
 * A page a server serves (a trace store's UI), opened in headless Chromium as a person would open it: its
 * screenshot at `width` × `height` saved as `test-artifacts/<name>.png`, and the DOM Chromium built. A page
 * its scripts render after loading names `scriptMillis` (Chromium's virtual time, which waits for the page's
 * own requests), as for `openInChromium`.
 */
export const openUrlInChromium = Effect.fnUntraced(function* (
  name: string,
  url: string,
  size: { readonly width: number; readonly height: number; readonly scriptMillis?: number }
) {
  const screenshot = join(TEST_ARTIFACTS, `${name}.png`)
  mkdirSync(dirname(screenshot), { recursive: true })
  // The window's size for the DOM too: a page that renders only the rows in view (a long list) renders the same ones.
  const settle = [
    `--window-size=${size.width},${size.height}`,
    ...(size.scriptMillis === undefined ? [] : [`--virtual-time-budget=${size.scriptMillis}`])
  ]
  const dom = yield* run([...settle, "--dump-dom", url])
  yield* run([...settle, `--screenshot=${screenshot}`, url])
  return { screenshot, screenshotBytes: statSync(screenshot).size, dom }
})
