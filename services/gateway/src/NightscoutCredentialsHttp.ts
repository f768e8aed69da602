import { randomUUID } from "node:crypto"
import { CurrentCaller, DexMonApi, Forbidden, NotFound, ValidationError } from "@dexmon/api"
import {
  credentialDigests,
  credentialHint,
  type NightscoutCredential,
  NightscoutCredentialId,
  newAccessToken,
  newApiSecret
} from "@dexmon/domain"
import { NightscoutCredentialStore } from "@dexmon/ports"
import { Clock, Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { unavailable } from "./Unavailable.ts"

const storeUnavailable = unavailable("the Nightscout credential store")

/** A credential as listed: what it is, never its secret. */
const viewOf = (credential: NightscoutCredential) => ({
  id: credential.id,
  kind: credential.kind,
  role: credential.role,
  hint: credential.hint,
  created_at: credential.created_at
})

/**
 * The caller's credentials for Nightscout's tools. A new secret or token is generated here, answered once and
 * stored only as the digests of the forms a client presents it in.
 */
export const NightscoutCredentialsHttp = HttpApiBuilder.group(
  DexMonApi,
  "nightscoutCredentials",
  Effect.fn(function* (handlers) {
    const store = yield* NightscoutCredentialStore
    return handlers
      .handle(
        "create",
        Effect.fn("NightscoutCredentialsHttp.create")(function* ({ payload }) {
          const caller = yield* CurrentCaller
          // The group asks for glucose:write; every credential also reads, so making one needs glucose:read too.
          if (!caller.scopes.has("glucose:read")) {
            return yield* new Forbidden({
              message: "creating a Nightscout credential needs glucose:read as well: every credential reads the data"
            })
          }
          if (payload.kind === "api_secret" && payload.role === "readable") {
            return yield* ValidationError.fromIssues("payload", [
              { path: "role", message: "an api_secret always reads and writes: leave role out, or ask for a token" }
            ])
          }
          const role = payload.kind === "api_secret" ? "uploader" : (payload.role ?? "readable")
          const secret = payload.kind === "api_secret" ? newApiSecret() : newAccessToken(role)
          const credential: NightscoutCredential = {
            id: NightscoutCredentialId.make(randomUUID()),
            user_id: caller.userId,
            kind: payload.kind,
            role,
            hint: credentialHint(secret),
            created_at: yield* Clock.currentTimeMillis
          }
          yield* store
            .create(credential, credentialDigests(payload.kind, secret))
            .pipe(Effect.catchTag("NightscoutCredentialStoreError", storeUnavailable))
          return {
            ...viewOf(credential),
            ...(payload.kind === "api_secret" ? { api_secret: secret } : { token: secret })
          }
        })
      )
      .handle(
        "list",
        Effect.fn("NightscoutCredentialsHttp.list")(function* () {
          const caller = yield* CurrentCaller
          const credentials = yield* store
            .list(caller.userId)
            .pipe(Effect.catchTag("NightscoutCredentialStoreError", storeUnavailable))
          return { items: credentials.map(viewOf) }
        })
      )
      .handle(
        "revoke",
        Effect.fn("NightscoutCredentialsHttp.revoke")(function* ({ params }) {
          const caller = yield* CurrentCaller
          const revoked = yield* store
            .revoke(caller.userId, params.credential_id)
            .pipe(Effect.catchTag("NightscoutCredentialStoreError", storeUnavailable))
          if (!revoked) return yield* new NotFound({ message: "no such Nightscout credential for this caller" })
        })
      )
  })
)
