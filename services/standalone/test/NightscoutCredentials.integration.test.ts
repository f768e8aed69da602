import { DexMonClient } from "@dexmon/sdk"
import { authEnv, makeDexMonProcess, makeDexMonProcessWith, makeIssuer, mint } from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"

/**
 * A request by hand, for what the SDK cannot send (a malformed body) and to see the raw JSON; as `user` (the
 * development caller) or with a bearer token.
 */
const call = (
  baseUrl: string,
  user: string | { readonly token: string },
  method: string,
  path: string,
  body?: unknown
) =>
  Effect.promise(async () => {
    const caller = typeof user === "string" ? { "x-user-id": user } : { authorization: `Bearer ${user.token}` }
    const response = await fetch(`${baseUrl}${path}`, {
      method,
      headers: { ...caller, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) })
    })
    const text = await response.text()
    return { status: response.status, body: text === "" ? undefined : (JSON.parse(text) as Record<string, unknown>) }
  })

describe("Nightscout credentials through DexMon's own API", () => {
  it.live(
    "created with the secret or token shown once, listed without it, revoked by their owner only; bad requests get 400",
    () =>
      Effect.gen(function* () {
        const dexmon = yield* makeDexMonProcess
        yield* dexmon.start
        const { apiSecret, token } = yield* Effect.gen(function* () {
          const client = yield* DexMonClient
          const apiSecret = yield* client.nightscoutCredentials.create({ payload: { kind: "api_secret" } })
          assert.strictEqual(apiSecret.kind, "api_secret")
          assert.strictEqual(apiSecret.role, "uploader", "an API secret reads and writes")
          assert.match(apiSecret.api_secret ?? "", /^[A-Za-z0-9]{24}$/, "at least 12 characters, as Nightscout asks")
          assert.isUndefined(apiSecret.token)
          assert.strictEqual(apiSecret.hint, apiSecret.api_secret!.slice(0, 4))
          const token = yield* client.nightscoutCredentials.create({ payload: { kind: "token" } })
          assert.strictEqual(token.role, "readable", "a token reads only unless asked otherwise")
          assert.match(token.token ?? "", /^readable-[A-Za-z0-9]{16}$/)
          assert.strictEqual(token.hint, token.token!.slice("readable-".length, "readable-".length + 4))
          const uploader = yield* client.nightscoutCredentials.create({ payload: { kind: "token", role: "uploader" } })
          assert.match(uploader.token ?? "", /^uploader-/)

          const listed = yield* client.nightscoutCredentials.list()
          assert.deepStrictEqual(
            listed.items.map((item) => [item.id, item.kind, item.role, item.hint]),
            [apiSecret, token, uploader].map((item) => [item.id, item.kind, item.role, item.hint])
          )
          yield* client.nightscoutCredentials.revoke({ params: { credential_id: uploader.id } })
          assert.deepStrictEqual(
            (yield* client.nightscoutCredentials.list()).items.map((item) => item.id),
            [apiSecret.id, token.id]
          )
          return { apiSecret, token }
        }).pipe(Effect.provide(DexMonClient.layer({ baseUrl: dexmon.baseUrl, userId: "ns-alice" })))

        // The raw list carries no secret or token, and another user sees none of alice's and cannot revoke them.
        const raw = yield* call(dexmon.baseUrl, "ns-alice", "GET", "/api/v1/nightscout/credentials")
        assert.strictEqual(raw.status, 200)
        const text = JSON.stringify(raw.body)
        assert.notInclude(text, apiSecret.api_secret!)
        assert.notInclude(text, token.token!)
        assert.deepStrictEqual((yield* call(dexmon.baseUrl, "ns-bob", "GET", "/api/v1/nightscout/credentials")).body, {
          items: []
        })
        const bobRevokes = yield* call(dexmon.baseUrl, "ns-bob", "DELETE", `/api/v1/nightscout/credentials/${token.id}`)
        assert.strictEqual(bobRevokes.status, 404)
        const aliceRevokes = yield* call(
          dexmon.baseUrl,
          "ns-alice",
          "DELETE",
          `/api/v1/nightscout/credentials/${token.id}`
        )
        assert.strictEqual(aliceRevokes.status, 204)
        const again = yield* call(dexmon.baseUrl, "ns-alice", "DELETE", `/api/v1/nightscout/credentials/${token.id}`)
        assert.strictEqual(again.status, 404)

        for (const [body, path] of [
          [{ kind: "api_secret", role: "readable" }, "role"],
          [{ kind: "password" }, "kind"],
          [{ kind: "token", role: "admin" }, "role"]
        ] as const) {
          const refused = yield* call(dexmon.baseUrl, "ns-alice", "POST", "/api/v1/nightscout/credentials", body)
          assert.strictEqual(refused.status, 400, JSON.stringify(body))
          const issues = (refused.body?.issues ?? []) as ReadonlyArray<{ readonly path: string }>
          assert.isTrue(
            issues.some((issue) => issue.path.includes(path)),
            `${JSON.stringify(body)}: ${JSON.stringify(refused.body)}`
          )
        }
        const badId = yield* call(dexmon.baseUrl, "ns-alice", "DELETE", "/api/v1/nightscout/credentials/not-a-uuid")
        assert.strictEqual(badId.status, 400)
        const left = (yield* call(dexmon.baseUrl, "ns-alice", "GET", "/api/v1/nightscout/credentials")).body as {
          readonly items: ReadonlyArray<{ readonly id: string }>
        }
        assert.deepStrictEqual(
          left.items.map((item) => item.id),
          [apiSecret.id],
          "the refused requests created nothing"
        )
      }),
    120_000
  )

  it.live(
    "making one needs glucose:read beside glucose:write, as every credential reads; no secret reaches the logs",
    () =>
      Effect.gen(function* () {
        const issuer = yield* makeIssuer
        const key = yield* issuer.newKey("key-1", true)
        const dexmon = yield* makeDexMonProcessWith(authEnv(issuer.jwksUrl))
        yield* dexmon.start
        const path = "/api/v1/nightscout/credentials"
        const writeOnly = yield* mint(key, { sub: "ns-carol", scope: "glucose:write" })
        const refused = yield* call(dexmon.baseUrl, { token: writeOnly }, "POST", path, { kind: "token" })
        assert.strictEqual(refused.status, 403, JSON.stringify(refused.body))
        const readWrite = yield* mint(key, { sub: "ns-carol", scope: "glucose:read glucose:write" })
        assert.deepStrictEqual((yield* call(dexmon.baseUrl, { token: readWrite }, "GET", path)).body, { items: [] })
        const created = yield* call(dexmon.baseUrl, { token: readWrite }, "POST", path, { kind: "api_secret" })
        assert.strictEqual(created.status, 201, JSON.stringify(created.body))
        const secret = String(created.body?.api_secret)
        assert.lengthOf(secret, 24)
        assert.notInclude(dexmon.output(), secret, "the secret is never logged")
      }),
    120_000
  )
})
