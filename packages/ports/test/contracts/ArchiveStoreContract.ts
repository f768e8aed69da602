import { assert, layer } from "@effect/vitest"
import { Effect, type Layer } from "effect"
import { ArchiveStore } from "../../src/index.ts"

let runCounter = 0
const newRun = () => `run-${Date.now().toString(36)}-${runCounter++}`
const bytes = (text: string) => new TextEncoder().encode(text)

/** The behaviour every layer of the archive-store port must have. */
export const archiveStoreContract = (name: string, storeLayer: Layer.Layer<ArchiveStore, unknown>) =>
  layer(storeLayer, { timeout: 60_000, excludeTestServices: true })(`ArchiveStore contract: ${name}`, (it) => {
    it.effect("puts and gets objects byte for byte under Hive-style keys; a missing key is undefined", () =>
      Effect.gen(function* () {
        const store = yield* ArchiveStore
        const prefix = `readings/${newRun()}`
        const key = `${prefix}/date=2026-08-01/user=u1/part-abc.parquet`
        const body = Uint8Array.from({ length: 70_000 }, (_, i) => (i * 31) % 256)
        yield* store.put(key, body)
        assert.deepStrictEqual(yield* store.get(key), body)
        assert.isUndefined(yield* store.get(`${prefix}/date=2026-08-01/user=u1/none.parquet`))
        yield* store.ping
      })
    )

    it.effect(
      "reads part of an object with the whole size: a slice, a suffix, cut at the end; none for a missing key",
      () =>
        Effect.gen(function* () {
          const store = yield* ArchiveStore
          const key = `readings/${newRun()}/date=2026-08-01/user=u1/part-range.parquet`
          const body = Uint8Array.from({ length: 70_000 }, (_, i) => (i * 7) % 251)
          yield* store.put(key, body)
          const slice = yield* store.getRange(key, { offset: 1000, length: 5000 })
          assert.deepStrictEqual(slice, { bytes: body.slice(1000, 6000), size: body.length })
          const tail = yield* store.getRange(key, { suffix: 8 })
          assert.deepStrictEqual(tail, { bytes: body.slice(-8), size: body.length })
          assert.deepStrictEqual(yield* store.getRange(key, { suffix: 100_000 }), { bytes: body, size: body.length })
          assert.deepStrictEqual(yield* store.getRange(key, { offset: 69_990, length: 100 }), {
            bytes: body.slice(69_990),
            size: body.length
          })
          assert.deepStrictEqual(yield* store.getRange(key, { offset: 10, length: 0 }), {
            bytes: new Uint8Array(),
            size: body.length
          })
          assert.isUndefined(yield* store.getRange(`${key}.none`, { suffix: 8 }))
          const emptyKey = `${key}.empty`
          yield* store.put(emptyKey, new Uint8Array())
          assert.deepStrictEqual(yield* store.getRange(emptyKey, { suffix: 8 }), { bytes: new Uint8Array(), size: 0 })
        })
    )

    it.effect("writing a key again replaces the object; list is in key order with sizes, by prefix only", () =>
      Effect.gen(function* () {
        const store = yield* ArchiveStore
        const prefix = `readings/${newRun()}`
        const keys = [
          `${prefix}/date=2026-08-02/user=b/x`,
          `${prefix}/date=2026-08-01/user=a/x`,
          `${prefix}/date=2026-08-01/user=b/x`
        ]
        for (const key of keys) yield* store.put(key, bytes(key))
        yield* store.put(keys[0]!, bytes("replaced"))
        yield* store.put(`${prefix}-other/date=2026-08-01/user=a/x`, bytes("elsewhere"))
        const listed = yield* store.list(`${prefix}/`)
        assert.deepStrictEqual(
          listed.map((object) => object.key),
          [...keys].sort()
        )
        assert.strictEqual(listed.find((object) => object.key === keys[0])!.size, "replaced".length)
        assert.deepStrictEqual(new TextDecoder().decode((yield* store.get(keys[0]!))!), "replaced")
        assert.deepStrictEqual(
          (yield* store.list(`${prefix}/date=2026-08-01/`)).map((object) => object.key),
          [keys[1]!, keys[2]!]
        )
      })
    )

    it.effect("removes objects, and refuses keys that could escape the archive", () =>
      Effect.gen(function* () {
        const store = yield* ArchiveStore
        const key = `readings/${newRun()}/date=2026-08-01/user=a/x`
        yield* store.put(key, bytes("x"))
        yield* store.remove(key)
        assert.isUndefined(yield* store.get(key))
        for (const bad of ["../escape", "/absolute", "a//b", "a/./b", ""]) {
          const error = yield* store.put(bad, bytes("x")).pipe(Effect.flip)
          assert.strictEqual(error._tag, "ArchiveStoreError", bad)
        }
      })
    )
  })
