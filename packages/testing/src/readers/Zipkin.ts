import { Effect, Schema } from "effect"

/**
 * One span as Zipkin stores it (its v2 model): names and service names come back lower-cased, a span
 * with no parent is a trace's root, and `kind` is absent for a local (internal) span.
 */
export const ZipkinSpan = Schema.Struct({
  traceId: Schema.String,
  id: Schema.String,
  parentId: Schema.optional(Schema.String),
  name: Schema.optional(Schema.String),
  kind: Schema.optional(Schema.Literals(["CLIENT", "SERVER", "PRODUCER", "CONSUMER"])),
  timestamp: Schema.optional(Schema.Number),
  duration: Schema.optional(Schema.Number),
  localEndpoint: Schema.optional(Schema.Struct({ serviceName: Schema.optional(Schema.String) })),
  tags: Schema.optional(Schema.Record(Schema.String, Schema.String))
})
export type ZipkinSpan = typeof ZipkinSpan.Type

const Trace = Schema.Array(ZipkinSpan)
const Traces = Schema.Array(Trace)

export class ZipkinReadError extends Schema.TaggedError<ZipkinReadError>()("ZipkinReadError", {
  url: Schema.String,
  message: Schema.String
}) {}

const getJson = <S extends Schema.Top>(url: string, schema: S) =>
  Effect.tryPromise({
    try: async () => {
      const response = await fetch(url)
      const body = await response.text()
      if (!response.ok) throw new Error(`${response.status}: ${body.slice(0, 500)}`)
      return JSON.parse(body) as unknown
    },
    catch: (cause) => new ZipkinReadError({ url, message: cause instanceof Error ? cause.message : String(cause) })
  }).pipe(
    Effect.flatMap(Schema.decodeUnknownEffect(schema)),
    Effect.mapError((error) =>
      error._tag === "ZipkinReadError" ? error : new ZipkinReadError({ url, message: error.message })
    )
  )

/**
 * A trace store's own account of what it received, read through Zipkin's HTTP API (`ZIPKIN_URL`): the
 * traces with a span of `serviceName` (named `spanName`, when given) in the last `lookbackMs`, newest first,
 * and one trace by id (empty until a span of it arrives).
 */
export const makeZipkinReader = (zipkinUrl: string) => ({
  traces: (query: { readonly serviceName: string; readonly spanName?: string; readonly lookbackMs?: number }) => {
    const search = new URLSearchParams({
      serviceName: query.serviceName.toLowerCase(),
      lookback: String(query.lookbackMs ?? 3_600_000),
      limit: "100"
    })
    if (query.spanName !== undefined) search.set("spanName", query.spanName.toLowerCase())
    return getJson(`${zipkinUrl}/api/v2/traces?${search}`, Traces)
  },
  trace: (traceId: string) =>
    getJson(`${zipkinUrl}/api/v2/trace/${traceId}`, Trace).pipe(
      // 404 until the first span of the trace is stored.
      Effect.catchIf(
        (error) => error.message.startsWith("404"),
        () => Effect.succeed([] as ReadonlyArray<ZipkinSpan>)
      )
    ),
  /** The page a person opens to look at the trace. */
  uiUrl: (traceId: string) => `${zipkinUrl}/zipkin/traces/${traceId}`
})

export type ZipkinReader = ReturnType<typeof makeZipkinReader>
