import { Agent } from "node:https"
import { rootCertificates } from "node:tls"
import type { ListObjectsV2CommandOutput } from "@aws-sdk/client-s3"
import { Config, Effect, Layer, Option, Predicate, Redacted } from "effect"
import { failureOf } from "../StoreFailure.ts"
import { pemFile } from "../tls/PemFile.ts"
import {
  type ArchiveObject,
  ArchiveStore,
  ArchiveStoreError,
  type ByteRange,
  isValidArchiveKey,
  type ObjectRange
} from "./ArchiveStore.ts"

/**
 * `S3_BUCKET`, `S3_ENDPOINT` (for S3-compatible servers; unset for AWS),
 * `S3_REGION`, `S3_FORCE_PATH_STYLE`, and the standard AWS credential
 * variables (`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, or the SDK's chain). An `https://`
 * endpoint whose certificate is signed by a private CA is trusted through `S3_CA_FILE` (PEM; it is
 * added to the system's roots, and the certificate must still name the endpoint's host).
 */
export const s3Config = Config.all({
  bucket: Config.String("S3_BUCKET"),
  endpoint: Config.option(Config.String("S3_ENDPOINT")),
  region: Config.String("S3_REGION").pipe(Config.withDefault("us-east-1")),
  forcePathStyle: Config.Boolean("S3_FORCE_PATH_STYLE").pipe(Config.withDefault(false)),
  accessKeyId: Config.option(Config.String("AWS_ACCESS_KEY_ID")),
  secretAccessKey: Config.option(Config.Redacted("AWS_SECRET_ACCESS_KEY")),
  ca: pemFile("S3_CA_FILE")
})

/**
 * S3 error codes that pass with time although their status is a 4xx: throttling (S3 and
 * S3-compatible servers answer 503 SlowDown, but some 400 or 429 with these), a request the server
 * timed out or aborted, and a clock that drifted (the SDK corrects its offset on the next attempt).
 */
const transientS3Codes: ReadonlySet<string> = new Set([
  "SlowDown",
  "Throttling",
  "ThrottlingException",
  "ThrottledException",
  "RequestThrottled",
  "RequestThrottledException",
  "TooManyRequestsException",
  "RequestLimitExceeded",
  "BandwidthLimitExceeded",
  "RequestTimeout",
  "RequestTimeoutException",
  "TimeoutError",
  "OperationAborted",
  "InternalError",
  "ServiceUnavailable",
  "RequestTimeTooSkewed",
  "RequestExpired",
  "RequestInTheFuture"
])

/**
 * Whether an S3 failure passes with time: no answer from S3 at all (no `$metadata`: a socket or
 * DNS failure, a timeout), an error the SDK marks `$retryable`, a 5xx or 429, or one of the
 * transient codes above. Everything else (a missing key, a denied request, a bad request) is
 * permanent.
 */
export const isTransient = (cause: unknown): boolean => {
  if (!Predicate.hasProperty(cause, "$metadata") || !Predicate.isObject(cause.$metadata)) return true
  if (Predicate.hasProperty(cause, "$retryable") && Predicate.isObject(cause.$retryable)) return true
  const status = cause.$metadata.httpStatusCode
  if (!Predicate.isNumber(status) || status >= 500 || status === 429) return true
  const code = Predicate.hasProperty(cause, "Code") && Predicate.isString(cause.Code) ? cause.Code : undefined
  const name = Predicate.hasProperty(cause, "name") && Predicate.isString(cause.name) ? cause.name : undefined
  return (code !== undefined && transientS3Codes.has(code)) || (name !== undefined && transientS3Codes.has(name))
}
const failWith = failureOf((fields) => new ArchiveStoreError(fields), isTransient)

const invalidKey = (key: string) =>
  Effect.fail(new ArchiveStoreError({ operation: "key", message: `invalid archive key "${key}"`, transient: false }))

/** The archive store on S3 (or an S3-compatible server): one object per key in `S3_BUCKET`. */
export const make = Effect.gen(function* () {
  const config = yield* s3Config
  // Loaded here, not at the top: a process that archives nothing on S3 does not pay for the SDK (some 35 MB).
  const {
    DeleteObjectCommand,
    GetObjectCommand,
    HeadBucketCommand,
    HeadObjectCommand,
    ListObjectsV2Command,
    PutObjectCommand,
    S3Client
  } = yield* Effect.promise(() => import("@aws-sdk/client-s3"))
  const client = yield* Effect.acquireRelease(
    Effect.sync(
      () =>
        new S3Client({
          region: config.region,
          forcePathStyle: config.forcePathStyle,
          // Whole objects are read back only by the archiver, which checks every row against the sha256 of the
          // rows it wrote (a stronger check than the CRC the SDK would recompute on every GET, at half a
          // millisecond of CPU each); ranged reads carry no whole-object checksum anyway.
          responseChecksumValidation: "WHEN_REQUIRED",
          ...(Option.isSome(config.endpoint) ? { endpoint: config.endpoint.value } : {}),
          // The SDK's own handler with an agent that trusts the private CA besides the public roots.
          ...(Option.isSome(config.ca)
            ? {
                requestHandler: {
                  httpsAgent: new Agent({ keepAlive: true, ca: [...rootCertificates, config.ca.value] })
                }
              }
            : {}),
          ...(Option.isSome(config.accessKeyId) && Option.isSome(config.secretAccessKey)
            ? {
                credentials: {
                  accessKeyId: config.accessKeyId.value,
                  secretAccessKey: Redacted.value(config.secretAccessKey.value)
                }
              }
            : {})
        })
    ),
    (s3) => Effect.sync(() => s3.destroy())
  )
  const send = <A>(operation: string, run: (signal: AbortSignal) => Promise<A>) =>
    Effect.tryPromise({ try: run, catch: failWith(operation) })

  const put = Effect.fn("ArchiveStore.put")(function* (key: string, bytes: Uint8Array) {
    if (!isValidArchiveKey(key)) return yield* invalidKey(key)
    yield* send("put", (abortSignal) =>
      client.send(new PutObjectCommand({ Bucket: config.bucket, Key: key, Body: bytes }), { abortSignal })
    )
  })

  const get = Effect.fn("ArchiveStore.get")(function* (key: string) {
    if (!isValidArchiveKey(key)) return yield* invalidKey(key)
    return yield* send("get", async (abortSignal) => {
      try {
        const response = await client.send(new GetObjectCommand({ Bucket: config.bucket, Key: key }), { abortSignal })
        return response.Body === undefined ? new Uint8Array() : await response.Body.transformToByteArray()
      } catch (error) {
        if ((error as { name?: string }).name === "NoSuchKey") return undefined
        throw error
      }
    })
  })

  /** An object's size from a HEAD request, or `undefined` when there is none. */
  const sizeOf = async (key: string, abortSignal: AbortSignal) => {
    try {
      const head = await client.send(new HeadObjectCommand({ Bucket: config.bucket, Key: key }), { abortSignal })
      return head.ContentLength ?? 0
    } catch (error) {
      if ((error as { name?: string }).name === "NotFound" || (error as { name?: string }).name === "NoSuchKey") {
        return undefined
      }
      throw error
    }
  }

  const getRange = Effect.fn("ArchiveStore.getRange")(function* (key: string, range: ByteRange) {
    if (!isValidArchiveKey(key)) return yield* invalidKey(key)
    return yield* send("get range", async (abortSignal): Promise<ObjectRange | undefined> => {
      const wanted = "suffix" in range ? range.suffix : range.length
      // An empty range, or a range of an empty object (S3 answers 416 for it), holds no bytes: only the size is asked.
      const empty = async () => {
        const size = await sizeOf(key, abortSignal)
        return size === undefined ? undefined : { bytes: new Uint8Array(), size }
      }
      if (wanted <= 0) return empty()
      const header =
        "suffix" in range ? `bytes=-${range.suffix}` : `bytes=${range.offset}-${range.offset + range.length - 1}`
      try {
        const response = await client.send(new GetObjectCommand({ Bucket: config.bucket, Key: key, Range: header }), {
          abortSignal
        })
        const bytes = response.Body === undefined ? new Uint8Array() : await response.Body.transformToByteArray()
        // `bytes first-last/size`; a server that ignores Range sends the whole object (status 200, no Content-Range).
        const total = /\/(\d+)$/.exec(response.ContentRange ?? "")
        if (total === null) {
          const size = bytes.byteLength
          const start = "suffix" in range ? Math.max(0, size - range.suffix) : Math.min(range.offset, size)
          return { bytes: bytes.slice(start, start + wanted), size }
        }
        return { bytes, size: Number(total[1]) }
      } catch (error) {
        const name = (error as { name?: string }).name
        if (name === "NoSuchKey") return undefined
        if (
          name === "InvalidRange" ||
          (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 416
        ) {
          return empty()
        }
        throw error
      }
    })
  })

  const list = Effect.fn("ArchiveStore.list")(function* (prefix: string) {
    const objects: Array<ArchiveObject> = []
    let token: string | undefined
    do {
      const page: ListObjectsV2CommandOutput = yield* send("list", (abortSignal) =>
        client.send(new ListObjectsV2Command({ Bucket: config.bucket, Prefix: prefix, ContinuationToken: token }), {
          abortSignal
        })
      )
      for (const object of page.Contents ?? []) {
        if (object.Key !== undefined) objects.push({ key: object.Key, size: object.Size ?? 0 })
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined
    } while (token !== undefined)
    return objects.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
  })

  const remove = Effect.fn("ArchiveStore.remove")(function* (key: string) {
    if (!isValidArchiveKey(key)) return yield* invalidKey(key)
    yield* send("remove", (abortSignal) =>
      client.send(new DeleteObjectCommand({ Bucket: config.bucket, Key: key }), { abortSignal })
    )
  })

  const ping = send("ping", (abortSignal) =>
    client.send(new HeadBucketCommand({ Bucket: config.bucket }), { abortSignal })
  ).pipe(Effect.asVoid)

  yield* ping
  yield* Effect.logInfo(
    `archive store: s3://${config.bucket}${Option.isSome(config.endpoint) ? ` at ${config.endpoint.value}` : ""}`
  )
  return ArchiveStore.of({ put, get, getRange, list, remove, ping })
})

export const layer = Layer.effect(ArchiveStore, make)
