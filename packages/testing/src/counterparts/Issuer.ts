import { createServer, type ServerResponse } from "node:http"
import { freePort } from "@dexmon/ports"
import { Clock, Effect } from "effect"
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose"

export const ISSUER = "https://issuer.dexmon.test/"
export const AUDIENCE = "dexmon-api"
export const ALL = "glucose:write glucose:read alerts:read alerts:write"

/**
 * An issuer of our own: RSA keys, a JWKS endpoint whose key list the test changes, and a token minter.
 * The test can also take the issuer away, as an outage does: `stop` closes its port (connections are
 * refused), `hang` keeps the port open and answers nothing (a fetch waits until its own deadline), and
 * `serve` brings it back on the same port. `fetches()` counts the JWKS requests that reached it,
 * answered or not. Closed with the scope.
 */
export const makeIssuer = Effect.gen(function* () {
  const published: Array<JWK> = []
  const port = yield* freePort
  let mode: "serving" | "hanging" | "stopped" = "serving"
  let fetches = 0
  const hung = new Set<ServerResponse>()
  const server = createServer((_, response) => {
    fetches += 1
    if (mode === "hanging") {
      hung.add(response)
      return
    }
    response.setHeader("content-type", "application/json")
    response.end(JSON.stringify({ keys: published }))
  })
  const listen = Effect.callback<void>((resume) => {
    const failed = (error: Error) => resume(Effect.die(error))
    server.once("error", failed)
    server.listen(port, "127.0.0.1", () => {
      server.off("error", failed)
      resume(Effect.void)
    })
  })
  /** Requests left waiting by `hang` are cut (their clients gave up long ago), then the port is closed. */
  const close = Effect.callback<void>((resume) => {
    for (const response of hung) response.destroy()
    hung.clear()
    if (!server.listening) return resume(Effect.void)
    server.close(() => resume(Effect.void))
    server.closeAllConnections()
  })
  yield* Effect.acquireRelease(listen, () => close)

  /** The port closed: a fetch of the key set is refused at once (ECONNREFUSED). */
  const stop = Effect.suspend(() => {
    mode = "stopped"
    return close
  })
  /** The port open, no answer: a fetch of the key set waits until it gives up. */
  const hang = Effect.sync(() => {
    mode = "hanging"
  })
  /** Answering again, on the same port (reopened if stopped); requests left hanging are cut. */
  const serve = Effect.suspend(() => {
    const wasStopped = mode === "stopped"
    mode = "serving"
    for (const response of hung) response.destroy()
    hung.clear()
    return wasStopped ? listen : Effect.void
  })

  const newKey = Effect.fnUntraced(function* (kid: string, publish: boolean) {
    const pair = yield* Effect.promise(() => generateKeyPair("RS256", { extractable: true }))
    const jwk = { ...(yield* Effect.promise(() => exportJWK(pair.publicKey))), kid, alg: "RS256", use: "sig" }
    if (publish) published.push(jwk)
    return { ...pair, kid, jwk }
  })
  return {
    jwksUrl: `http://127.0.0.1:${port}/jwks`,
    published,
    newKey,
    stop,
    hang,
    serve,
    fetches: () => fetches
  }
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
