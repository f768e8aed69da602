import type { Alert, AlertId, AlertStatus, AlertType, InvalidCursor, UserId } from "@dexmon/domain"
import { Context, type Effect, type Option, Schema } from "effect"
import { StoreFailureFields } from "../StoreFailure.ts"

export interface AlertQuery {
  readonly user_id: UserId
  /** Inclusive lower bound on the episode's start, epoch milliseconds. */
  readonly from: number
  /** Exclusive upper bound on the episode's start, epoch milliseconds. */
  readonly to: number
  readonly limit: number
  readonly cursor?: string | undefined
  /** Only episodes with this status. */
  readonly status?: AlertStatus | undefined
  /** Only episodes of this kind. */
  readonly alert_type?: AlertType | undefined
}

export interface AlertPage {
  readonly items: ReadonlyArray<Alert>
  readonly next_cursor: string | null
}

export class AlertStoreError extends Schema.TaggedError<AlertStoreError>()("AlertStoreError", StoreFailureFields) {}

/**
 * Alert episodes, partitioned by user, newest first. An episode is one row,
 * written again as it changes (extreme value, last reading, end, status):
 * saving is an upsert by alert id, so writing the same episode again (a
 * replayed batch) leaves one row with the same content.
 */
export class AlertStore extends Context.Service<
  AlertStore,
  {
    /** Stores (or updates) every episode of the batch; returns once all of them are durable. */
    readonly save: (alerts: ReadonlyArray<Alert>) => Effect.Effect<void, AlertStoreError>
    /** A user's episodes that started in a time range, newest first, optionally of one status or kind. */
    readonly list: (query: AlertQuery) => Effect.Effect<AlertPage, AlertStoreError | InvalidCursor>
    /** One episode by its id, without a scan; none when it does not exist or belongs to another user. */
    readonly get: (user: UserId, alertId: AlertId) => Effect.Effect<Option.Option<Alert>, AlertStoreError>
    /** A user's open episodes (no `ended_at`), at most one per sensor and kind, newest first. */
    readonly listOpen: (user: UserId) => Effect.Effect<ReadonlyArray<Alert>, AlertStoreError>
    /** A cheap round trip to the store, for readiness probes. */
    readonly ping: Effect.Effect<void, AlertStoreError>
  }
>()("dexmon/ports/alert-store/AlertStore") {}
