import { createHash } from "node:crypto"
import type { SensorLimit, Source } from "./Source.ts"

export interface ReadingContent {
  readonly sensor_id: string
  readonly timestamp: number
  readonly glucose_value: number
  readonly source: Source
  readonly sensor_limit?: SensorLimit | null | undefined
}

/**
 * A digest of what a reading says. The readings store keeps it on the row and
 * builds the etag from it and the version inside its upsert, so the etag is
 * recomputed in the same statement that changes the content.
 */
export const contentHash = (content: ReadingContent): string =>
  createHash("sha256")
    .update(
      // The sensor limit only when there is one: an ordinary reading keeps the hash (and etag) it always had.
      `${content.sensor_id}\u0000${content.timestamp}\u0000${content.glucose_value}\u0000${content.source}${content.sensor_limit == null ? "" : `\u0000${content.sensor_limit}`}`
    )
    .digest("hex")
    .slice(0, 20)

/** The etag of a stored reading. The readings store's SQL builds the same string: `content_hash || '-' || version`. */
export const computeEtag = (content: ReadingContent, version: number): string => `${contentHash(content)}-${version}`
