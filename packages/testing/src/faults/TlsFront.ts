import { connect, type Socket } from "node:net"
import { createServer, type TLSSocket } from "node:tls"
import { Effect } from "effect"
import type { IssuedCertificate } from "../Certificates.ts"
import { listenOnLoopback } from "../counterparts/Loopback.ts"

/**
 * A TLS front for a server that speaks plain TCP (as a load balancer or an ingress terminates TLS in
 * front of S3-compatible storage): it presents `certificate` on 127.0.0.1 and passes every decrypted
 * byte to `target` and back, one upstream connection per client connection. The server behind it is
 * the real one; only the channel is the front's. Closed, with every connection, with the scope.
 */
export const makeTlsFront = Effect.fn("TlsFront.make")(function* (
  target: { readonly host: string; readonly port: number },
  certificate: IssuedCertificate
) {
  const open = new Set<Socket>()
  let handshakes = 0
  const track = (socket: Socket) => {
    open.add(socket)
    socket.once("close", () => open.delete(socket))
  }
  const server = createServer({ cert: certificate.certificate, key: certificate.key }, (client: TLSSocket) => {
    handshakes += 1
    const upstream = connect(target.port, target.host)
    track(client)
    track(upstream)
    client.pipe(upstream).pipe(client)
    client.once("error", () => upstream.destroy())
    upstream.once("error", () => client.destroy())
  })
  // A client that refuses the certificate ends the handshake: the front's side of it is no failure.
  server.on("tlsClientError", () => undefined)
  const port = yield* listenOnLoopback(server, "the TLS front", () => {
    for (const socket of open) socket.destroy()
  })
  return {
    port,
    url: `https://127.0.0.1:${port}`,
    /** TLS connections the front has completed a handshake with (and passed on) so far. */
    handshakes: () => handshakes
  }
})
