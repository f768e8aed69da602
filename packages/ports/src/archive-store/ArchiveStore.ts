import { Context, type Effect, Schema } from "effect"
import { StoreFailureFields } from "../StoreFailure.ts"

export class ArchiveStoreError extends Schema.TaggedError<ArchiveStoreError>()(
  "ArchiveStoreError",
  StoreFailureFields
) {}

export interface ArchiveObject {
  readonly key: string
  readonly size: number
}

/** Which bytes of an object to read: `length` bytes from `offset`, or the last `suffix` bytes (all, if fewer). */
export type ByteRange = { readonly offset: number; readonly length: number } | { readonly suffix: number }

/** Part of an object, with the size of the whole object (so a reader can ask for its footer first). */
export interface ObjectRange {
  readonly bytes: Uint8Array
  readonly size: number
}

/**
 * Where the archiver puts readings older than the hot retention: immutable
 * objects under keys such as `readings/date=2026-08-01/user=u1/part-<hash>.parquet`.
 * S3 in production, a local folder for the embedded default.
 */
export class ArchiveStore extends Context.Service<
  ArchiveStore,
  {
    /** Writes the object whole (readers never see a partial object); writing the same key again replaces it. */
    readonly put: (key: string, bytes: Uint8Array) => Effect.Effect<void, ArchiveStoreError>
    /** The object's bytes, or `undefined` when there is none. */
    readonly get: (key: string) => Effect.Effect<Uint8Array | undefined, ArchiveStoreError>
    /**
     * Part of an object, or `undefined` when there is none: lets a reader take an object's footer and
     * then only the parts it needs, instead of the whole object. A range past the end is cut at the end.
     */
    readonly getRange: (key: string, range: ByteRange) => Effect.Effect<ObjectRange | undefined, ArchiveStoreError>
    /** Every object whose key starts with `prefix`, in key order. */
    readonly list: (prefix: string) => Effect.Effect<ReadonlyArray<ArchiveObject>, ArchiveStoreError>
    readonly remove: (key: string) => Effect.Effect<void, ArchiveStoreError>
    /** A cheap round trip to the store, for readiness probes. */
    readonly ping: Effect.Effect<void, ArchiveStoreError>
  }
>()("dexmon/ports/archive-store/ArchiveStore") {}

/** Keys are relative, slash-separated paths of safe characters: no `..`, no absolute paths, no empty segments. */
export const isValidArchiveKey = (key: string): boolean =>
  /^[A-Za-z0-9._=@:|-]+(\/[A-Za-z0-9._=@:|-]+)*$/.test(key) &&
  !key.split("/").some((segment) => segment === "." || segment === "..")
