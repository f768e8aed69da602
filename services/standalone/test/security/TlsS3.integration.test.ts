import { ArchiveStore, S3ArchiveStore } from "@dexmon/ports"
import { makeCertificateAuthority, makeTlsFront, requiredServer } from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { Cause, ConfigProvider, Effect, Exit, Layer } from "effect"

/**
 * DexMon's S3 client over HTTPS with a private CA (`S3_CA_FILE`): the harness's S3Proxy behind a TLS
 * front whose certificate a CA of this test's own signed, as an ingress would terminate TLS before it.
 */

const endpoint = new URL(requiredServer("S3_ENDPOINT"))
/** One of the variables the harness exports beside `S3_ENDPOINT`. */
const harnessVariable = (name: string): string => {
  const value = process.env[name]
  if (value === undefined || value === "")
    throw new Error(`${name} is not set: run the tests with the harness's environment`)
  return value
}
/** The harness's S3 variables (bucket, region, credentials, path style), for both the plain and the HTTPS client. */
const harnessS3 = {
  S3_BUCKET: harnessVariable("S3_BUCKET"),
  S3_REGION: process.env.S3_REGION ?? "us-east-1",
  S3_FORCE_PATH_STYLE: "true",
  AWS_ACCESS_KEY_ID: harnessVariable("AWS_ACCESS_KEY_ID"),
  AWS_SECRET_ACCESS_KEY: harnessVariable("AWS_SECRET_ACCESS_KEY")
}

/** The archive store as the services build it, from these variables only. */
const storeFrom = (env: Record<string, string>) =>
  S3ArchiveStore.layer.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord({ ...harnessS3, ...env }))))

const putAndGet = (key: string, bytes: Uint8Array) =>
  Effect.gen(function* () {
    const store = yield* ArchiveStore
    yield* store.put(key, bytes)
    return yield* store.get(key)
  })

describe("S3 over HTTPS with a private CA: S3_CA_FILE (issue 16)", () => {
  it.live(
    "with the CA the archive store writes and reads over HTTPS; without it, or with another, nothing is written",
    () =>
      Effect.gen(function* () {
        const authority = yield* makeCertificateAuthority("s3")
        const other = yield* makeCertificateAuthority("s3-other")
        const front = yield* makeTlsFront(
          { host: endpoint.hostname, port: Number(endpoint.port || 80) },
          yield* authority.issue("127.0.0.1", ["127.0.0.1", "localhost"])
        )
        const run = Date.now().toString(36)
        const bytes = new TextEncoder().encode(`archived over TLS ${run}`)

        const key = `tls-test/${run}/ok.bin`
        const read = yield* putAndGet(key, bytes).pipe(
          Effect.provide(storeFrom({ S3_ENDPOINT: front.url, S3_CA_FILE: authority.certificateFile }))
        )
        assert.deepStrictEqual(read, bytes)

        // The system's roots alone, or another private CA, do not vouch for the front's certificate.
        for (const [name, env] of [
          ["no CA", { S3_ENDPOINT: front.url }],
          ["another CA", { S3_ENDPOINT: front.url, S3_CA_FILE: other.certificateFile }]
        ] as const) {
          const refusedKey = `tls-test/${run}/${name.replace(" ", "-")}.bin`
          const exit = yield* putAndGet(refusedKey, bytes).pipe(Effect.provide(storeFrom(env)), Effect.exit)
          assert.isTrue(Exit.isFailure(exit), `${name}: the store wrote over an unverified channel`)
          if (Exit.isFailure(exit)) {
            assert.match(Cause.pretty(exit.cause), /self.signed|unable to (verify|get local issuer)/i, name)
          }
          // Read straight from the server, not through the front: nothing arrived.
          const stored = yield* Effect.gen(function* () {
            return yield* (yield* ArchiveStore).get(refusedKey)
          }).pipe(Effect.provide(storeFrom({ S3_ENDPOINT: endpoint.toString() })))
          assert.isUndefined(stored, `${name}: the object reached the server`)
        }

        // The object written over HTTPS is the server's own, readable without the front.
        const direct = yield* Effect.gen(function* () {
          const store = yield* ArchiveStore
          const found = yield* store.get(key)
          yield* store.remove(key)
          return found
        }).pipe(Effect.provide(storeFrom({ S3_ENDPOINT: endpoint.toString() })))
        assert.deepStrictEqual(direct, bytes)
      })
  )
})
