import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises"
import { dirname, join, relative, sep } from "node:path"
import { Config, Effect, Layer } from "effect"
import { failureOf } from "../StoreFailure.ts"
import {
  type ArchiveObject,
  ArchiveStore,
  ArchiveStoreError,
  type ByteRange,
  isValidArchiveKey,
  type ObjectRange
} from "./ArchiveStore.ts"

const failWith = failureOf((fields) => new ArchiveStoreError(fields))

const invalidKey = (key: string) =>
  Effect.fail(new ArchiveStoreError({ operation: "key", message: `invalid archive key "${key}"`, transient: false }))

/**
 * The archive store in a local folder (`DEXMON_DATA_DIR/archive` by default):
 * the embedded default. An object is written to a temporary file and renamed
 * into place, so a crash never leaves a partial object under its key.
 */
export const make = (root: string) =>
  Effect.gen(function* () {
    const pathOf = (key: string) => join(root, ...key.split("/"))
    const attempt = <A>(operation: string, run: () => Promise<A>) =>
      Effect.tryPromise({ try: run, catch: failWith(operation) })

    yield* attempt("open", () => mkdir(root, { recursive: true }))

    const put = Effect.fn("ArchiveStore.put")(function* (key: string, bytes: Uint8Array) {
      if (!isValidArchiveKey(key)) return yield* invalidKey(key)
      const target = pathOf(key)
      const temporary = `${target}.partial-${process.pid}-${Math.random().toString(36).slice(2)}`
      yield* attempt("put", async () => {
        await mkdir(dirname(target), { recursive: true })
        await writeFile(temporary, bytes, { flush: true })
        await rename(temporary, target)
      })
    })

    const get = Effect.fn("ArchiveStore.get")(function* (key: string) {
      if (!isValidArchiveKey(key)) return yield* invalidKey(key)
      return yield* attempt("get", () =>
        readFile(pathOf(key)).then(
          (buffer) => new Uint8Array(buffer),
          (error: NodeJS.ErrnoException) => (error.code === "ENOENT" ? undefined : Promise.reject(error))
        )
      )
    })

    const getRange = Effect.fn("ArchiveStore.getRange")(function* (key: string, range: ByteRange) {
      if (!isValidArchiveKey(key)) return yield* invalidKey(key)
      return yield* attempt("get range", async (): Promise<ObjectRange | undefined> => {
        const file = await open(pathOf(key), "r").catch((error: NodeJS.ErrnoException) =>
          error.code === "ENOENT" ? undefined : Promise.reject(error)
        )
        if (file === undefined) return undefined
        try {
          const { size } = await file.stat()
          const start =
            "suffix" in range
              ? Math.max(0, size - Math.max(0, range.suffix))
              : Math.min(Math.max(0, range.offset), size)
          const end = "suffix" in range ? size : Math.min(size, start + Math.max(0, range.length))
          const bytes = new Uint8Array(end - start)
          if (bytes.byteLength > 0) await file.read(bytes, 0, bytes.byteLength, start)
          return { bytes, size }
        } finally {
          await file.close()
        }
      })
    })

    const list = Effect.fn("ArchiveStore.list")(function* (prefix: string) {
      const entries = yield* attempt("list", () =>
        readdir(root, { recursive: true, withFileTypes: true }).catch((error: NodeJS.ErrnoException) =>
          error.code === "ENOENT" ? [] : Promise.reject(error)
        )
      )
      const objects: Array<ArchiveObject> = []
      for (const entry of entries) {
        if (!entry.isFile() || entry.name.includes(".partial-")) continue
        const key = relative(root, join(entry.parentPath, entry.name)).split(sep).join("/")
        if (!key.startsWith(prefix)) continue
        const size = yield* attempt("list", () => stat(join(entry.parentPath, entry.name)).then((s) => s.size))
        objects.push({ key, size })
      }
      return objects.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    })

    const remove = Effect.fn("ArchiveStore.remove")(function* (key: string) {
      if (!isValidArchiveKey(key)) return yield* invalidKey(key)
      yield* attempt("remove", () => rm(pathOf(key), { force: true }))
    })

    const ping = attempt("ping", () => stat(root)).pipe(Effect.asVoid)

    return ArchiveStore.of({ put, get, getRange, list, remove, ping })
  })

export const layer = (root: string) => Layer.effect(ArchiveStore, make(root))

/** `DEXMON_ARCHIVE_DIR`, default `DEXMON_DATA_DIR/archive`. */
export const layerConfig = Layer.unwrap(
  Effect.gen(function* () {
    const dataDir = yield* Config.String("DEXMON_DATA_DIR").pipe(Config.withDefault(".data"))
    const root = yield* Config.String("DEXMON_ARCHIVE_DIR").pipe(Config.withDefault(join(dataDir, "archive")))
    return layer(root)
  })
)
