import { timingSafeEqual } from "node:crypto"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { webhookSignature } from "@dexmon/domain"
import { Effect } from "effect"

/** How the receiver answers a request: a status, or never (the request hangs until the sender gives up). */
export type Answer = { readonly status: number; readonly retryAfter?: string } | "hang"

/** One request as the receiver saw it, with whether its signature verified with the secret it was told. */
export interface Received {
  readonly at: number
  readonly delivery: string
  readonly timestamp: string
  readonly signature: string
  readonly body: string
  readonly verified: boolean
  readonly answered: number | "hang"
  /** Requests still open (hanging) when this one arrived. */
  readonly openAtArrival: number
}

/**
 * A webhook endpoint the test owns: a plain HTTP server on 127.0.0.1 that
 * records every request, verifies its DexMon signature with the secret the
 * test gives it (constant time, over the raw body), and answers as `answer`
 * decides for each request (by delivery id and the number of requests seen
 * for it).
 */
export const makeWebhookReceiver = (answer: (delivery: string, nth: number) => Answer) =>
  Effect.gen(function* () {
    let secret = ""
    let open = 0
    const received: Array<Received> = []
    const hanging = new Set<ServerResponse>()
    const handle = (request: IncomingMessage, response: ServerResponse) => {
      const chunks: Array<Buffer> = []
      request.on("data", (chunk: Buffer) => chunks.push(chunk))
      request.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8")
        const delivery = String(request.headers["dexmon-delivery"] ?? "")
        const timestamp = String(request.headers["dexmon-timestamp"] ?? "")
        const signature = String(request.headers["dexmon-signature"] ?? "")
        const expected = Buffer.from(webhookSignature(secret, Number(timestamp), body))
        const given = Buffer.from(signature)
        const verified = expected.length === given.length && timingSafeEqual(expected, given)
        const nth = received.filter((r) => r.delivery === delivery).length + 1
        const decided = answer(delivery, nth)
        received.push({
          at: Date.now(),
          delivery,
          timestamp,
          signature,
          body,
          verified,
          answered: decided === "hang" ? "hang" : decided.status,
          openAtArrival: open
        })
        if (decided === "hang") {
          open += 1
          hanging.add(response)
          response.on("close", () => {
            open -= 1
            hanging.delete(response)
          })
          return
        }
        response.writeHead(
          decided.status,
          decided.retryAfter === undefined ? {} : { "retry-after": decided.retryAfter }
        )
        response.end()
      })
    }
    const server = createServer(handle)
    const port = yield* Effect.callback<number>((resume) => {
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed((server.address() as AddressInfo).port)))
    })
    yield* Effect.addFinalizer(() =>
      Effect.callback<void>((resume) => {
        for (const response of hanging) response.destroy()
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
    )
    return {
      url: `http://127.0.0.1:${port}/hook`,
      /** The secret deliveries must be signed with (the one registration or rotation answered). */
      useSecret: (value: string) => {
        secret = value
      },
      received: () => [...received],
      openRequests: () => open
    }
  })

export type WebhookReceiver = Effect.Success<ReturnType<typeof makeWebhookReceiver>>
