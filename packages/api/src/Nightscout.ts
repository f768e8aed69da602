import {
  NightscoutCredentialId,
  NightscoutCredentialKind,
  NightscoutCredentialView,
  NightscoutRole
} from "@dexmon/domain"
import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import { Forbidden, NotFound, ServiceUnavailable, ValidationError } from "./Errors.ts"
import { Caller, RequiredScope } from "./Middleware.ts"

/** What a new credential is: its kind and, for a token, its role (an API secret always reads and writes). */
export const NightscoutCredentialInput = Schema.Struct({
  kind: NightscoutCredentialKind,
  role: Schema.optional(NightscoutRole).annotate({
    description: "for a token: readable (default) or uploader; an api_secret is always an uploader"
  })
})
export type NightscoutCredentialInput = typeof NightscoutCredentialInput.Type

/** A new credential as answered once: the view and the secret or token itself, never shown again. */
export const NightscoutCredentialCreated = Schema.Struct({
  ...NightscoutCredentialView.fields,
  api_secret: Schema.optional(Schema.String).annotate({
    description: "the API secret, for an api_secret: set it as the tool's API_SECRET; shown only now"
  }),
  token: Schema.optional(Schema.String).annotate({
    description: "the access token, for a token: the tool sends it as ?token=; shown only now"
  })
}).pipe(HttpApiSchema.status(201))
export type NightscoutCredentialCreated = typeof NightscoutCredentialCreated.Type

export const NightscoutCredentialList = Schema.Struct({ items: Schema.Array(NightscoutCredentialView) })

/**
 * The caller's credentials for Nightscout's tools (xDrip+, Loop, Nightguard...): each maps to exactly this
 * DexMon user, and is stored only as digests.
 */
export class NightscoutCredentialsGroup extends HttpApiGroup.make("nightscoutCredentials")
  .add(
    HttpApiEndpoint.post("create", "/nightscout/credentials", {
      payload: NightscoutCredentialInput,
      success: NightscoutCredentialCreated,
      error: [ValidationError, Forbidden, ServiceUnavailable]
    }).annotateMerge(
      OpenApi.annotations({
        summary:
          "Create an API secret or an access token for Nightscout's tools (needs glucose:read too); the secret or token is shown once"
      })
    ),
    HttpApiEndpoint.get("list", "/nightscout/credentials", {
      success: NightscoutCredentialList,
      error: ServiceUnavailable
    }).annotateMerge(
      OpenApi.annotations({ summary: "The caller's Nightscout credentials, oldest first, without secrets" })
    ),
    HttpApiEndpoint.delete("revoke", "/nightscout/credentials/:credential_id", {
      params: { credential_id: NightscoutCredentialId },
      success: HttpApiSchema.NoContent,
      error: [NotFound, ServiceUnavailable]
    }).annotateMerge(OpenApi.annotations({ summary: "Revoke a credential: it authenticates nothing from now on" }))
  )
  .middleware(Caller)
  .annotate(RequiredScope, "glucose:write")
  .prefix("/api/v1")
  .annotateMerge(
    OpenApi.annotations({
      title: "Nightscout credentials",
      description: "API secrets and tokens with which Nightscout's uploaders and followers reach the caller's data"
    })
  ) {}
