import { createHash } from "node:crypto"
import { DexMonClient } from "@dexmon/sdk"
import { ALL, eventually, makeServiceProcess, makeTcpProxy, mint } from "@dexmon/testing"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect } from "effect"
import { makeProductionEnvironment } from "./support/Topology.ts"

/** How long the Nightscout service waits on a silent database: short, so the outage is answered quickly here. */
const QUERY_TIMEOUT = "2 seconds"

describe("the Nightscout service when its credential store is out of reach", () => {
  it.live(
    "answers 503 with a JSON error (never a 401 that would tell an uploader its secret is wrong), and serves again once the database is back, without a restart",
    () =>
      Effect.gen(function* () {
        const run = `nsfault${Date.now().toString(36)}`
        const { env, key, database } = yield* makeProductionEnvironment(run)
        const direct = new URL(database.url)
        const proxy = yield* makeTcpProxy({ host: direct.hostname, port: Number(direct.port || 5432) })
        const throughProxy = new URL(database.url)
        throughProxy.hostname = "127.0.0.1"
        throughProxy.port = String(proxy.port)
        const gateway = yield* makeServiceProcess("gateway", env)
        const nightscout = yield* makeServiceProcess("nightscout", {
          ...env,
          DATABASE_URL: throughProxy.toString(),
          DEXMON_PG_QUERY_TIMEOUT: QUERY_TIMEOUT,
          DEXMON_PG_CONNECT_TIMEOUT: QUERY_TIMEOUT,
          // Few connections for the outage to strand: each times out once before the pool opens a fresh one.
          DEXMON_PG_POOL_SIZE: "2"
        })
        yield* Effect.all([gateway.start, nightscout.start], { concurrency: "unbounded" })
        const token = yield* mint(key, { sub: "ns-fault-user", scope: ALL })
        const secret = yield* Effect.flatMap(DexMonClient, (app) =>
          app.nightscoutCredentials.create({ payload: { kind: "api_secret" } })
        ).pipe(Effect.provide(DexMonClient.layer({ baseUrl: gateway.baseUrl, token })))
        const headers = {
          "api-secret": createHash("sha1").update(secret.api_secret!).digest("hex"),
          "content-type": "application/json"
        }
        const now = yield* Clock.currentTimeMillis
        const post = (sgv: number) =>
          Effect.promise(async () => {
            const response = await fetch(`${nightscout.baseUrl}/api/v1/entries`, {
              method: "POST",
              headers,
              body: JSON.stringify([{ type: "sgv", sgv, date: now - 60_000, device: "fault-phone" }])
            })
            return { status: response.status, body: (await response.json()) as Record<string, unknown> }
          })

        assert.strictEqual((yield* post(120)).status, 200, "posts while the database answers")
        yield* proxy.blackhole
        const during = yield* post(121)
        assert.strictEqual(during.status, 503, JSON.stringify(during.body))
        assert.strictEqual(during.body._tag, "ServiceUnavailable")
        assert.strictEqual(during.body.message, "the credential store is unavailable; retry later")
        // The connections the outage stranded time out one by one (each a 503 the uploader retries), then fresh ones
        // serve: the service comes back without a restart.
        yield* proxy.heal("strand")
        const after = yield* eventually(post(122), (answer) => answer.status !== 503, {
          what: "a post served again after the heal",
          every: "500 millis",
          times: 60
        })
        assert.strictEqual(after.status, 200, JSON.stringify(after.body))
      })
  )
})
