/**
 * What a test reads of a finished span: the parts of OpenTelemetry's
 * `ReadableSpan` that carry recorded data (its name, attributes, events and
 * status) and where it sits in its trace, so a test can look for what must,
 * or must never, be recorded, and what continues what.
 */
export interface FinishedSpan {
  readonly name: string
  readonly kind: number
  readonly attributes: Readonly<Record<string, unknown>>
  readonly events: ReadonlyArray<{
    readonly name: string
    readonly attributes?: Readonly<Record<string, unknown>> | undefined
  }>
  readonly status: { readonly code: number; readonly message?: string | undefined }
  /** Its trace and its own id. */
  readonly spanContext: () => { readonly traceId: string; readonly spanId: string }
  /** Its parent's, absent for a trace's root. */
  readonly parentSpanContext?: { readonly traceId: string; readonly spanId: string } | undefined
}

/** Span kind SERVER, as OpenTelemetry numbers it. */
export const SERVER_SPAN = 1

/**
 * A span processor that keeps every finished span of the process (for
 * `layerSpanProcessor` of `@dexmon/observability`): unlike an
 * `InMemorySpanExporter`, it does not forget them when the provider shuts
 * down, and it exports at once, so a test polls `spans` with `eventually`.
 */
export const makeSpanCollector = () => {
  const spans: Array<FinishedSpan> = []
  const processor = {
    onStart: () => {},
    onEnd: (span: FinishedSpan) => {
      spans.push(span)
    },
    forceFlush: () => Promise.resolve(),
    shutdown: () => Promise.resolve()
  }
  return { spans, processor }
}

/** Everything a span recorded, as one text: name, attributes, events (with theirs) and status message. */
export const spanText = (span: FinishedSpan): string =>
  JSON.stringify({
    name: span.name,
    attributes: span.attributes,
    events: span.events.map((event) => ({ name: event.name, attributes: event.attributes ?? {} })),
    status: span.status
  })
