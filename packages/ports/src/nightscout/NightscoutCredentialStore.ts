import type {
  NightscoutCredential,
  NightscoutCredentialId,
  NightscoutCredentialKind,
  NightscoutRole,
  UserId
} from "@dexmon/domain"
import { Context, type Effect, type Option, Schema } from "effect"
import { StoreFailureFields } from "../StoreFailure.ts"

export class NightscoutCredentialStoreError extends Schema.TaggedError<NightscoutCredentialStoreError>()(
  "NightscoutCredentialStoreError",
  StoreFailureFields
) {}

/** Who a presented credential is: its owner and what it may do. */
export interface NightscoutIdentity {
  readonly credential_id: NightscoutCredentialId
  readonly user_id: UserId
  readonly kind: NightscoutCredentialKind
  readonly role: NightscoutRole
}

/**
 * The credentials users created for Nightscout's tools, each mapping to exactly one DexMon user. The secrets
 * themselves are never stored: a credential is found by the digests of the forms a client presents it in
 * (`credentialDigests` of the domain). Every read but `authenticate` is scoped to a user.
 */
export class NightscoutCredentialStore extends Context.Service<
  NightscoutCredentialStore,
  {
    /** Stores a new credential with its digests; an id or a digest already stored fails and changes nothing. */
    readonly create: (
      credential: NightscoutCredential,
      digests: ReadonlyArray<string>
    ) => Effect.Effect<void, NightscoutCredentialStoreError>
    /** The user's credentials, oldest first. */
    readonly list: (
      userId: UserId
    ) => Effect.Effect<ReadonlyArray<NightscoutCredential>, NightscoutCredentialStoreError>
    /** Deletes one of the user's credentials and its digests; false for an unknown id or another user's. */
    readonly revoke: (
      userId: UserId,
      id: NightscoutCredentialId
    ) => Effect.Effect<boolean, NightscoutCredentialStoreError>
    /** The credential a presented digest belongs to (`presentedDigest` of the domain), if any. */
    readonly authenticate: (
      digest: string
    ) => Effect.Effect<Option.Option<NightscoutIdentity>, NightscoutCredentialStoreError>
    /** A cheap round trip to the store, for readiness probes. */
    readonly ping: Effect.Effect<void, NightscoutCredentialStoreError>
  }
>()("dexmon/ports/nightscout/NightscoutCredentialStore") {}
