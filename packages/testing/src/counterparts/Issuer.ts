import { createServer } from "node:http"
import { freePort } from "@dexmon/ports"
import { Clock, Effect } from "effect"
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose"

export const ISSUER = "https://issuer.dexmon.test/"
export const AUDIENCE = "dexmon-api"
export const ALL = "glucose:write glucose:read alerts:read alerts:write"

/** An issuer of our own: RSA keys, a JWKS endpoint whose key list the test changes, and a token minter. */
export const makeIssuer = Effect.gen(function* () {
  const published: Array<JWK> = []
  const port = yield* freePort
  const server = createServer((_, response) => {
    response.setHeader("content-type", "application/json")
    response.end(JSON.stringify({ keys: published }))
  })
  yield* Effect.acquireRelease(
    Effect.callback<void>((resume) => {
      server.listen(port, "127.0.0.1", () => resume(Effect.void))
    }),
    () => Effect.sync(() => server.close())
  )
  const newKey = Effect.fnUntraced(function* (kid: string, publish: boolean) {
    const pair = yield* Effect.promise(() => generateKeyPair("RS256", { extractable: true }))
    const jwk = { ...(yield* Effect.promise(() => exportJWK(pair.publicKey))), kid, alg: "RS256", use: "sig" }
    if (publish) published.push(jwk)
    return { ...pair, kid, jwk }
  })
  return { jwksUrl: `http://127.0.0.1:${port}/jwks`, published, newKey }
})
export type Key = Effect.Success<ReturnType<Effect.Success<typeof makeIssuer>["newKey"]>>

export interface Claims {
  readonly sub: string
  readonly scope?: string
  readonly iss?: string
  readonly aud?: string
  /** Seconds from now. */
  readonly exp?: number
  readonly nbf?: number
}
export const mint = (key: Key, claims: Claims) =>
  Effect.gen(function* () {
    const now = Math.floor((yield* Clock.currentTimeMillis) / 1000)
    let jwt = new SignJWT(claims.scope === undefined ? {} : { scope: claims.scope })
      .setProtectedHeader({ alg: "RS256", kid: key.kid, typ: "JWT" })
      .setIssuer(claims.iss ?? ISSUER)
      .setAudience(claims.aud ?? AUDIENCE)
      .setSubject(claims.sub)
      .setIssuedAt(now)
      .setExpirationTime(now + (claims.exp ?? 300))
    if (claims.nbf !== undefined) jwt = jwt.setNotBefore(now + claims.nbf)
    return yield* Effect.promise(() => jwt.sign(key.privateKey))
  })

/** The environment that points a DexMon service at this issuer. */
export const authEnv = (jwksUrl: string) => ({
  AUTH_ISSUER: ISSUER,
  AUTH_AUDIENCE: AUDIENCE,
  AUTH_JWKS_URL: jwksUrl
})
