import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net"
import { Effect } from "effect"

/**
 * What happens, when a partition heals, to the connections that were open across it:
 * - `resume`: TCP carries on as if the path had only been slow. The bytes either side sent during the
 *   partition arrive now (delayed, never lost), and so does a close: a client that gave a connection up
 *   during the partition has its close delivered, and the server ends that session.
 * - `strand`: the path comes back but those connections never answer again, as when a stateful middlebox
 *   (NAT, load balancer, firewall) lost their state or the server they reached is gone. Only new
 *   connections work. A client without a deadline of its own waits on a stranded connection forever.
 */
export type HealMode = "resume" | "strand"

export interface TcpProxyStats {
  /** Connections accepted since the proxy started. */
  readonly accepted: number
  /** Connections the client closed while they were silent (partitioned or stranded): given up, not reused. */
  readonly abandonedWhileSilent: number
  /** Connections that reached the target after the most recent `heal`. */
  readonly connectedSinceHeal: number
}

/** One proxied connection: the client's socket, the target's once connected, and what waits to be forwarded. */
interface Link {
  readonly client: Socket
  upstream: Socket | undefined
  /** Silent: neither direction forwards; what arrives is held (`resume`) or dropped (`strand`). */
  silent: boolean
  stranded: boolean
  clientEnded: boolean
  upstreamEnded: boolean
  readonly toUpstream: Array<Buffer>
  readonly toClient: Array<Buffer>
  closed: boolean
}

/**
 * A TCP proxy in front of `target` that the test partitions at will: `blackhole()` stops forwarding in
 * both directions without closing anything (each peer sees silence, never a reset: packets dropped, not
 * refused), including for connections opened during the partition, which are accepted but go nowhere;
 * `heal(mode)` ends the partition. Listens on 127.0.0.1; closed with its scope.
 */
export const makeTcpProxy = (target: { readonly host: string; readonly port: number }) =>
  Effect.gen(function* () {
    const links = new Set<Link>()
    let partitioned = false
    let accepted = 0
    let abandonedWhileSilent = 0
    let connectedSinceHeal = 0

    const destroy = (link: Link) => {
      link.closed = true
      links.delete(link)
      link.client.destroy()
      link.upstream?.destroy()
    }

    const connectUpstream = (link: Link) => {
      const upstream = tcpConnect({ host: target.host, port: target.port })
      link.upstream = upstream
      upstream.on("connect", () => {
        connectedSinceHeal += 1
      })
      upstream.on("data", (chunk: Buffer) => {
        if (link.stranded) return
        if (link.silent) link.toClient.push(chunk)
        else link.client.write(chunk)
      })
      // The server closing is forwarded like its bytes: now, after the partition, or (stranded) never.
      upstream.on("end", () => {
        link.upstreamEnded = true
        if (!link.silent && !link.stranded) link.client.end()
      })
      upstream.on("error", () => {
        if (!link.silent && !link.stranded) destroy(link)
      })
      for (const chunk of link.toUpstream.splice(0)) upstream.write(chunk)
      if (link.clientEnded) upstream.end()
    }

    const onClientGone = (link: Link) => {
      if (link.closed) return
      if (link.silent || link.stranded) {
        abandonedWhileSilent += 1
        // A stranded connection's close never reaches the server; a partitioned one's waits for `heal`.
        if (link.stranded) link.closed = true
        return
      }
      link.upstream?.end()
    }

    const server: Server = createServer({ allowHalfOpen: true }, (client) => {
      accepted += 1
      const link: Link = {
        client,
        upstream: undefined,
        silent: partitioned,
        stranded: false,
        clientEnded: false,
        upstreamEnded: false,
        toUpstream: [],
        toClient: [],
        closed: false
      }
      links.add(link)
      client.on("data", (chunk: Buffer) => {
        if (link.stranded) return
        if (link.silent || link.upstream === undefined) link.toUpstream.push(chunk)
        else link.upstream.write(chunk)
      })
      client.on("end", () => {
        link.clientEnded = true
        onClientGone(link)
      })
      client.on("error", () => {
        link.clientEnded = true
        onClientGone(link)
      })
      // A connection opened during the partition is accepted (the loopback kernel does that) but reaches
      // the target only when the partition heals, as a SYN retransmitted after it would.
      if (!partitioned) connectUpstream(link)
    })

    const port = yield* Effect.callback<number, Error>((resume) => {
      server.once("error", (error) => resume(Effect.fail(error)))
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        resume(
          typeof address === "object" && address !== null
            ? Effect.succeed(address.port)
            : Effect.fail(new Error("the proxy has no port"))
        )
      })
    })
    yield* Effect.addFinalizer(() =>
      Effect.callback<void>((resume) => {
        for (const link of [...links]) destroy(link)
        server.close(() => resume(Effect.void))
      })
    )

    /** Drops every packet from here on, on every connection, old and new, in both directions. */
    const blackhole = Effect.sync(() => {
      partitioned = true
      for (const link of links) link.silent = true
    })

    /** Ends the partition: new connections work again; the ones open across it `resume` or stay `strand`ed. */
    const heal = (mode: HealMode) =>
      Effect.sync(() => {
        partitioned = false
        connectedSinceHeal = 0
        for (const link of [...links]) {
          if (!link.silent) continue
          link.silent = false
          if (link.upstream === undefined) {
            // Opened during the partition: a client that already gave up needs nothing more.
            if (link.clientEnded) destroy(link)
            else connectUpstream(link)
            continue
          }
          if (mode === "strand") {
            link.stranded = true
            link.toUpstream.length = 0
            link.toClient.length = 0
            continue
          }
          for (const chunk of link.toUpstream.splice(0)) link.upstream.write(chunk)
          for (const chunk of link.toClient.splice(0)) link.client.write(chunk)
          if (link.clientEnded) link.upstream.end()
          if (link.upstreamEnded) link.client.end()
        }
      })

    const stats = Effect.sync((): TcpProxyStats => ({ accepted, abandonedWhileSilent, connectedSinceHeal }))

    return { port, blackhole, heal, stats }
  })

export type TcpProxy = Effect.Success<ReturnType<typeof makeTcpProxy>>
