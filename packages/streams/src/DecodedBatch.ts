import type { ConsumerRecord, PartitionBatch } from "@dexmon/ports"

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

/** One partition batch on its way through a consumer pipeline. */
export interface DecodedBatch<A> {
  readonly batch: PartitionBatch
  readonly decoded: ReadonlyArray<Decoded<A>>
  readonly failed: ReadonlyArray<Failed>
}
