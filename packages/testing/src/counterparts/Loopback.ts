import type { Server } from "node:net"
import { Effect } from "effect"

/**
 * Listens on a free loopback port for the scope, and closes the server (and its open connections, via `cut`) when
 * the scope ends. For the stand-ins a test serves its code's counterparts from.
 */
export const listenOnLoopback = (server: Server, what: string, cut: () => void) =>
  Effect.acquireRelease(
    Effect.callback<number>((resume) => {
      server.once("error", (error) => resume(Effect.die(error)))
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        resume(
          typeof address === "object" && address !== null
            ? Effect.succeed(address.port)
            : Effect.die(new Error(`${what} has no port`))
        )
      })
    }),
    () =>
      Effect.callback<void>((resume) => {
        cut()
        server.close(() => resume(Effect.void))
      })
  )
