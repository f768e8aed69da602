import type { UserId } from "@dexmon/domain"
import { Context, type Effect, type Option, Schema } from "effect"
import { StoreFailureFields } from "../StoreFailure.ts"

/**
 * One version of a user's alert settings. Versions count from 1 per user and
 * never change once written; version 0 is "never changed: the deployment's
 * defaults" and has no row.
 */
export interface StoredAlertSettings {
  readonly user_id: UserId
  readonly version: number
  /**
   * The settings document as JSON text, encoded and decoded by the caller (the
   * store does not look inside). A store may hand back an equivalent
   * serialisation rather than the bytes it was given (PostgreSQL's jsonb orders
   * keys and spaces them its own way), so callers parse it, never compare text.
   */
  readonly document: string
  /** When this version was written (epoch ms), by the store's clock. */
  readonly updated_at: number
}

export class AlertSettingsStoreError extends Schema.TaggedError<AlertSettingsStoreError>()(
  "AlertSettingsStoreError",
  StoreFailureFields
) {}

/**
 * A put named a version that is no longer (or never was) the user's current
 * one: someone else changed the settings since they were read. Nothing was
 * written. Read `current_version` again and decide again.
 */
export class AlertSettingsConflict extends Schema.TaggedError<AlertSettingsConflict>()("AlertSettingsConflict", {
  user_id: Schema.String,
  expected_version: Schema.Number,
  current_version: Schema.Number
}) {}

/**
 * Each user's alert settings as immutable versions. The receiver stamps the
 * user's current version on every reading it accepts, and the notifier reads
 * exactly that version, so a replay of the log decides as the first run did
 * whatever the user changed since.
 */
export class AlertSettingsStore extends Context.Service<
  AlertSettingsStore,
  {
    /** The user's newest version; none while the user never changed the defaults. */
    readonly current: (userId: UserId) => Effect.Effect<Option.Option<StoredAlertSettings>, AlertSettingsStoreError>
    /**
     * The user's newest version number, 0 when none. Never cached: a put that
     * another process answered must show in the very next request.
     */
    readonly currentVersion: (userId: UserId) => Effect.Effect<number, AlertSettingsStoreError>
    /** One version of the user's settings; none for version 0 and for versions not written (yet). */
    readonly at: (
      userId: UserId,
      version: number
    ) => Effect.Effect<Option.Option<StoredAlertSettings>, AlertSettingsStoreError>
    /**
     * Writes `document` (JSON text) as version `expectedVersion + 1`, only if the
     * user's current version is exactly `expectedVersion` (0: never written).
     * Of concurrent puts on the same expected version exactly one is written;
     * the others fail with `AlertSettingsConflict`, as does a put naming a
     * stale version.
     */
    readonly put: (
      userId: UserId,
      document: string,
      expectedVersion: number
    ) => Effect.Effect<StoredAlertSettings, AlertSettingsStoreError | AlertSettingsConflict>
    /** A cheap round trip to the store, for readiness probes. */
    readonly ping: Effect.Effect<void, AlertSettingsStoreError>
  }
>()("dexmon/ports/alert-settings/AlertSettingsStore") {}
