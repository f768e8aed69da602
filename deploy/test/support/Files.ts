import { existsSync, readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { parse, parseAllDocuments } from "yaml"

/** The repository's root folder, whatever the working directory of the test run. */
export const repoRoot = fileURLToPath(new URL("../../../", import.meta.url))

export const repoPath = (...segments: Array<string>) => join(repoRoot, ...segments)

export const readText = (path: string) => readFileSync(repoPath(path), "utf8")

export const exists = (path: string) => existsSync(repoPath(path))

/** The file names in a repository folder that end with `extension`, sorted. */
export const filesIn = (folder: string, extension: string) =>
  readdirSync(repoPath(folder))
    .filter((name) => name.endsWith(extension))
    .sort()

/**
 * One YAML document, as Compose reads it: `<<` merge keys are applied (YAML
 * 1.1 semantics, which Compose and the Compose files' anchors rely on), and a
 * syntax error or warning fails the test instead of being ignored.
 */
export const readYaml = (path: string): unknown =>
  parse(readText(path), { merge: true, prettyErrors: true, strict: true })

/** Every non-empty document of a multi-document YAML file; any error in any document throws. */
export const readYamlDocuments = (path: string): Array<unknown> =>
  parseAllDocuments(readText(path), { prettyErrors: true, strict: true }).flatMap((document) => {
    if (document.errors.length > 0) {
      throw new Error(`${path}: ${document.errors.map((error) => error.message).join("; ")}`)
    }
    const value = document.toJS()
    return value === null ? [] : [value as unknown]
  })

/** A plain object, for walking parsed YAML and JSON without `any`. */
export type Json = Record<string, unknown>

export const isObject = (value: unknown): value is Json =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** `value` as an object, or a thrown error naming `what`. */
export const asObject = (value: unknown, what: string): Json => {
  if (!isObject(value)) throw new Error(`${what} is not an object: ${JSON.stringify(value)}`)
  return value
}

export const asArray = (value: unknown, what: string): Array<unknown> => {
  if (!Array.isArray(value)) throw new Error(`${what} is not a list: ${JSON.stringify(value)}`)
  return value
}

/**
 * The tag of an image reference (`repo/name:tag`, `registry:5000/name:tag`,
 * `name@sha256:...`), or undefined when it has none (which means `latest`).
 */
export const imageTag = (image: string): string | undefined => {
  const withoutDigest = image.split("@")[0] ?? image
  const lastSegment = withoutDigest.slice(withoutDigest.lastIndexOf("/") + 1)
  const colon = lastSegment.indexOf(":")
  return colon === -1 ? undefined : lastSegment.slice(colon + 1)
}
