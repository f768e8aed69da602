import type { ConsumerRecord, PartitionBatch } from "@dexmon/ports"
import type { Tracer } from "effect"

/** A record that could be decoded, with its value. */
export interface Decoded<A> {
  readonly record: ConsumerRecord
  readonly value: A
}

/** A record that failed, with why, how often it was tried and since when: what a dead letter carries. */
export interface Failed {
  readonly record: ConsumerRecord
  readonly errorTag: string
  readonly errorMessage: string
  readonly attempts: number
  readonly firstFailureAt: number
}

/**
 * The spans of one batch on its way through a consumer: one per record (when spans are exported),
 * continuing its producer's trace, and the batch's own, which links to them and is the parent of every
 * stage's work on it.
 */
export interface BatchTrace {
  readonly span: Tracer.Span
  readonly records: ReadonlyMap<ConsumerRecord, Tracer.Span>
}

/** One partition batch on its way through a consumer pipeline. */
export interface DecodedBatch<A> {
  readonly batch: PartitionBatch
  readonly decoded: ReadonlyArray<Decoded<A>>
  readonly failed: ReadonlyArray<Failed>
  /** Absent outside `runConsumer` (a stage used on its own). */
  readonly trace?: BatchTrace | undefined
}
