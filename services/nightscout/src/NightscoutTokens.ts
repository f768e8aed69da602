import { randomBytes } from "node:crypto"
import type { NightscoutCredentialId, NightscoutRole, UserId } from "@dexmon/domain"
import { Clock, Config, Context, Effect, Layer, Option, Redacted } from "effect"
import { jwtVerify, SignJWT } from "jose"

/** How long a JWT from `/api/v2/authorization/request` is good for: Nightscout's own lifetime, 8 hours. */
export const NIGHTSCOUT_JWT_LIFETIME_SECONDS = 8 * 3600

const ISSUER = "dexmon-nightscout"

/** What a Nightscout JWT stands for: one credential of one user. */
export interface NightscoutTokenClaims {
  readonly userId: UserId
  readonly credentialId: NightscoutCredentialId
  readonly role: NightscoutRole
}

/**
 * Signs and checks the JWTs Nightscout's clients exchange an access token for (HS256, 8 hours). The key is
 * `NIGHTSCOUT_JWT_SECRET` (at least 32 characters), shared by every instance that serves the Nightscout API;
 * without it each process makes its own, so its JWTs die with it (clients then ask for a new one, as they do
 * when one expires). A JWT names its credential, which is looked up on every use, so revoking the credential
 * ends its JWTs too.
 */
export class NightscoutTokens extends Context.Service<
  NightscoutTokens,
  {
    readonly issue: (claims: NightscoutTokenClaims) => Effect.Effect<{
      readonly token: string
      readonly iat: number
      readonly exp: number
    }>
    /** The claims of a JWT this deployment signed and that has not expired, if it is one. */
    readonly verify: (token: string) => Effect.Effect<Option.Option<NightscoutTokenClaims>>
  }
>()("dexmon/nightscout/NightscoutTokens") {
  static readonly make = (key: Uint8Array) =>
    NightscoutTokens.of({
      issue: Effect.fn("NightscoutTokens.issue")(function* (claims: NightscoutTokenClaims) {
        const iat = Math.floor((yield* Clock.currentTimeMillis) / 1000)
        const exp = iat + NIGHTSCOUT_JWT_LIFETIME_SECONDS
        const token = yield* Effect.promise(() =>
          new SignJWT({ credential: claims.credentialId, role: claims.role })
            .setProtectedHeader({ alg: "HS256", typ: "JWT" })
            .setIssuer(ISSUER)
            .setSubject(claims.userId)
            .setIssuedAt(iat)
            .setExpirationTime(exp)
            .sign(key)
        )
        return { token, iat, exp }
      }),
      verify: Effect.fn("NightscoutTokens.verify")(function* (token: string) {
        const now = Math.floor((yield* Clock.currentTimeMillis) / 1000)
        const verified = yield* Effect.tryPromise(() =>
          jwtVerify(token, key, { algorithms: ["HS256"], issuer: ISSUER, currentDate: new Date(now * 1000) })
        ).pipe(Effect.option)
        return Option.flatMap(verified, ({ payload }) =>
          typeof payload.sub === "string" &&
          typeof payload.credential === "string" &&
          (payload.role === "readable" || payload.role === "uploader")
            ? Option.some({
                userId: payload.sub as UserId,
                credentialId: payload.credential as NightscoutCredentialId,
                role: payload.role
              })
            : Option.none()
        )
      })
    })

  static readonly layerConfig = Layer.effect(
    NightscoutTokens,
    Effect.gen(function* () {
      const configured = yield* Config.option(Config.Redacted("NIGHTSCOUT_JWT_SECRET"))
      if (Option.isSome(configured)) {
        const secret = Redacted.value(configured.value)
        if (secret.length < 32) {
          return yield* Effect.die(new Error("NIGHTSCOUT_JWT_SECRET must be at least 32 characters"))
        }
        // The manifests' placeholder is long enough, and public: anyone could sign JWTs with it.
        if (/change-me/i.test(secret)) {
          return yield* Effect.die(
            new Error("NIGHTSCOUT_JWT_SECRET is still the placeholder from the manifests: set a random one")
          )
        }
        return NightscoutTokens.make(new TextEncoder().encode(secret))
      }
      yield* Effect.logInfo(
        "NIGHTSCOUT_JWT_SECRET is not set: Nightscout JWTs are signed with a key of this process only; set it when more than one instance serves the Nightscout API"
      )
      return NightscoutTokens.make(randomBytes(32))
    })
  )
}
