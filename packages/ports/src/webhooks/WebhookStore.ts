import type { UserId, Webhook, WebhookId } from "@dexmon/domain"
import { Context, type Effect, type Option, Schema } from "effect"
import { StoreFailureFields } from "../StoreFailure.ts"

export class WebhookStoreError extends Schema.TaggedError<WebhookStoreError>()(
  "WebhookStoreError",
  StoreFailureFields
) {}

/**
 * The webhook endpoints users registered, with their signing secrets. Every
 * read but `byId` is scoped to a user: another user's endpoint is answered as
 * if it did not exist, so the API needs no ownership check of its own.
 */
export class WebhookStore extends Context.Service<
  WebhookStore,
  {
    /**
     * Stores a new endpoint exactly as given: the caller issues its id, secret
     * and `created_at`. An id already stored fails (permanently) and changes nothing.
     */
    readonly register: (webhook: Webhook) => Effect.Effect<void, WebhookStoreError>
    /** The user's endpoints, oldest first (by `created_at`, then id). */
    readonly list: (userId: UserId) => Effect.Effect<ReadonlyArray<Webhook>, WebhookStoreError>
    /** The endpoints of several users in one read, oldest first per user; a user without any is absent. */
    readonly listFor: (
      userIds: ReadonlyArray<UserId>
    ) => Effect.Effect<ReadonlyMap<UserId, ReadonlyArray<Webhook>>, WebhookStoreError>
    /** One of the user's endpoints; none for an unknown id or another user's. */
    readonly get: (userId: UserId, id: WebhookId) => Effect.Effect<Option.Option<Webhook>, WebhookStoreError>
    /**
     * An endpoint whoever owns it, for the deliverer, which acts for no caller:
     * it asks before each attempt, so a removed endpoint gets nothing more.
     */
    readonly byId: (id: WebhookId) => Effect.Effect<Option.Option<Webhook>, WebhookStoreError>
    /**
     * Deletes one of the user's endpoints; false when it is unknown or another
     * user's. Deliveries already queued for it stay in the outbox, which drops
     * them when `byId` no longer finds the endpoint.
     */
    readonly remove: (userId: UserId, id: WebhookId) => Effect.Effect<boolean, WebhookStoreError>
    /**
     * Replaces the secret of one of the user's endpoints and answers the
     * endpoint as it now is; none (and nothing changed) for an unknown id or
     * another user's. Later attempts, retries of older deliveries included, sign with the new secret.
     */
    readonly rotateSecret: (
      userId: UserId,
      id: WebhookId,
      secret: string
    ) => Effect.Effect<Option.Option<Webhook>, WebhookStoreError>
    /** A cheap round trip to the store, for readiness probes. */
    readonly ping: Effect.Effect<void, WebhookStoreError>
  }
>()("dexmon/ports/webhooks/WebhookStore") {}
