import { connect } from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Harness from "../../../infra/Harness.ts"
import { sqlClient } from "../src/index.ts"

/** Opens a TCP connection, writes `bytes`, and resolves once the server has closed it. */
const sendAndAwaitClose = (port: number, bytes: Uint8Array) =>
  Effect.callback<void>((resume) => {
    const socket = connect(port, "127.0.0.1", () => socket.write(bytes))
    socket.on("data", () => undefined)
    socket.on("error", () => undefined)
    socket.on("close", () => resume(Effect.void))
    return Effect.sync(() => socket.destroy())
  })

describe("the harness's TimescaleDB server (infra/timescale/serve.ts)", () => {
  it.live(
    "a message whose length is below its own four bytes closes that connection, and the server goes on serving others",
    () =>
      Effect.gen(function* () {
        const server = yield* Effect.acquireRelease(
          Effect.promise(() => Harness.privateTimescale()),
          (started) => Effect.promise(() => started.stop())
        )
        const port = Number(new URL(server.url).port)
        // A startup message (no type byte: its length, then protocol 3.0), then a query whose length says -1.
        const malformed = new Uint8Array(13)
        const view = new DataView(malformed.buffer)
        view.setInt32(0, 8)
        view.setInt32(4, 196_608)
        malformed[8] = "Q".charCodeAt(0)
        view.setInt32(9, -1)
        yield* sendAndAwaitClose(port, malformed)
        // Without the check the framing loop would spin on it for good, and this would never be answered.
        const sql = yield* sqlClient(server.url, { maxConnections: 1 })
        const [row] = yield* sql<{ answer: number }>`SELECT 41 + 1 AS answer`
        assert.strictEqual(Number(row!.answer), 42)
      }).pipe(Effect.scoped),
    60_000
  )
})
