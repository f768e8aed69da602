import { randomUUID } from "node:crypto"
import {
  Forbidden,
  type NightscoutCredentialCreated,
  type NightscoutCredentialInput,
  NotFound,
  type ServiceUnavailable,
  ValidationError
} from "@dexmon/api"
import {
  credentialDigests,
  credentialHint,
  type NightscoutCredential,
  NightscoutCredentialId,
  type NightscoutCredentialView,
  newAccessToken,
  newApiSecret,
  type UserId
} from "@dexmon/domain"
import { NightscoutCredentialStore } from "@dexmon/ports"
import { Clock, Context, Effect, Layer } from "effect"
import { unavailable } from "./Unavailable.ts"

/** A credential as listed: what it is, never its secret. */
const viewOf = (credential: NightscoutCredential): NightscoutCredentialView => ({
  id: credential.id,
  kind: credential.kind,
  role: credential.role,
  hint: credential.hint,
  created_at: credential.created_at
})

/**
 * The caller's credentials for Nightscout's tools. A new secret or token is generated here, answered once and
 * stored only as the digests of the forms a client presents it in (`credentialDigests`).
 */
export class NightscoutCredentials extends Context.Service<
  NightscoutCredentials,
  {
    /** Makes a credential for the caller, who must be able to read (`scopes`): every credential reads. */
    readonly create: (
      caller: { readonly userId: UserId; readonly scopes: ReadonlySet<string> },
      input: NightscoutCredentialInput
    ) => Effect.Effect<typeof NightscoutCredentialCreated.Type, ValidationError | Forbidden | ServiceUnavailable>
    readonly list: (userId: UserId) => Effect.Effect<ReadonlyArray<NightscoutCredentialView>, ServiceUnavailable>
    readonly revoke: (userId: UserId, id: NightscoutCredentialId) => Effect.Effect<void, NotFound | ServiceUnavailable>
  }
>()("dexmon/gateway/NightscoutCredentials") {
  static readonly layer = Layer.effect(
    NightscoutCredentials,
    Effect.gen(function* () {
      const store = yield* NightscoutCredentialStore
      const storeUnavailable = unavailable("the Nightscout credential store")

      const create = Effect.fn("NightscoutCredentials.create")(function* (
        caller: { readonly userId: UserId; readonly scopes: ReadonlySet<string> },
        input: NightscoutCredentialInput
      ) {
        // The group asks for glucose:write; every credential also reads, so making one needs glucose:read too.
        if (!caller.scopes.has("glucose:read")) {
          return yield* new Forbidden({
            message: "creating a Nightscout credential needs glucose:read as well: every credential reads the data"
          })
        }
        if (input.kind === "api_secret" && input.role === "readable") {
          return yield* ValidationError.fromIssues("payload", [
            { path: "role", message: "an api_secret always reads and writes: leave role out, or ask for a token" }
          ])
        }
        const role = input.kind === "api_secret" ? "uploader" : (input.role ?? "readable")
        const secret = input.kind === "api_secret" ? newApiSecret() : newAccessToken(role)
        const credential: NightscoutCredential = {
          id: NightscoutCredentialId.make(randomUUID()),
          user_id: caller.userId,
          kind: input.kind,
          role,
          hint: credentialHint(secret),
          created_at: yield* Clock.currentTimeMillis
        }
        yield* store
          .create(credential, credentialDigests(input.kind, secret))
          .pipe(Effect.catchTag("NightscoutCredentialStoreError", storeUnavailable))
        return { ...viewOf(credential), ...(input.kind === "api_secret" ? { api_secret: secret } : { token: secret }) }
      })

      const list = Effect.fn("NightscoutCredentials.list")(function* (userId: UserId) {
        const credentials = yield* store
          .list(userId)
          .pipe(Effect.catchTag("NightscoutCredentialStoreError", storeUnavailable))
        return credentials.map(viewOf)
      })

      const revoke = Effect.fn("NightscoutCredentials.revoke")(function* (userId: UserId, id: NightscoutCredentialId) {
        const revoked = yield* store
          .revoke(userId, id)
          .pipe(Effect.catchTag("NightscoutCredentialStoreError", storeUnavailable))
        if (!revoked) return yield* new NotFound({ message: "no such Nightscout credential for this caller" })
      })

      return NightscoutCredentials.of({ create, list, revoke })
    })
  )
}
