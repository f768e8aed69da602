import type { Alert, InvalidCursor, UserId } from "@dexmon/domain"
import { Context, type Effect, Schema } from "effect"
import { StoreFailureFields } from "../StoreFailure.ts"

export interface AlertQuery {
  readonly user_id: UserId
  /** Inclusive lower bound, epoch milliseconds. */
  readonly from: number
  /** Exclusive upper bound, epoch milliseconds. */
  readonly to: number
  readonly limit: number
  readonly cursor?: string | undefined
}

export interface AlertPage {
  readonly items: ReadonlyArray<Alert>
  readonly next_cursor: string | null
}

export class AlertStoreError extends Schema.TaggedError<AlertStoreError>()("AlertStoreError", StoreFailureFields) {}

/**
 * Persisted alerts, partitioned by user, newest first. Saving is idempotent by
 * alert id: writing an alert again (a replayed event) leaves one alert.
 */
export class AlertStore extends Context.Service<
  AlertStore,
  {
    /** Stores every alert of the batch; returns once all of them are durable. */
    readonly save: (alerts: ReadonlyArray<Alert>) => Effect.Effect<void, AlertStoreError>
    /** A user's alerts in a time range, newest first. */
    readonly list: (query: AlertQuery) => Effect.Effect<AlertPage, AlertStoreError | InvalidCursor>
    /** A cheap round trip to the store, for readiness probes. */
    readonly ping: Effect.Effect<void, AlertStoreError>
  }
>()("dexmon/ports/alert-store/AlertStore") {}
