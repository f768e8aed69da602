import { randomUUID } from "node:crypto"
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http"
import { createServer } from "node:https"
import { Clock, Effect } from "effect"
import type { IssuedCertificate } from "../Certificates.ts"
import { listenOnLoopback } from "./Loopback.ts"

/**
 * One glucose value as Dexcom Share holds it: when the sensor measured it (epoch millis), mg/dL, and the
 * trend the receiver gave it, as Share answers it: a name ("SingleDown", "NotComputable") today, a number
 * (0 to 9) from older servers.
 */
export interface ShareReading {
  readonly timestamp: number
  readonly value: number
  readonly trend: string | number
}

/** One request as the stand-in saw it: its JSON body parsed (the text when not JSON), and what it answered. */
export interface DexcomShareRequest {
  readonly method: string
  readonly path: string
  readonly query: Readonly<Record<string, string>>
  readonly headers: IncomingHttpHeaders
  readonly body: unknown
  readonly status: number
}

export interface DexcomShareOptions {
  /** The Share account a follower app logs in with. */
  readonly accountName: string
  readonly password: string
  /** What the account's receiver uploaded, in any order. */
  readonly readings: ReadonlyArray<ShareReading>
  /** Share is HTTPS only: the certificate it presents, for 127.0.0.1. */
  readonly certificate: IssuedCertificate
}

const GENERAL = "/ShareWebServices/Services/General"
const PUBLISHER = "/ShareWebServices/Services/Publisher"

/** `Date(<millis>)`, or with the receiver's offset for `DT`, as Share writes its times. */
const shareDate = (millis: number, offset = "") => `Date(${millis}${offset})`

/** Share's error shape: HTTP 500 with a `Code` that clients match on (`SessionIdNotFound`, `AccountPasswordInvalid`). */
const fault = (code: string, message: string) => ({
  status: 500,
  body: { Code: code, Message: message, SubCode: `<OnlineException DateThrownLocal="" ErrorCode="${code}" />` }
})

const text = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined)

/**
 * A Dexcom Share of the test's own (the follower side of share2.dexcom.com): an HTTPS server on 127.0.0.1
 * that serves the readings it was given to the one account it knows, through Share's three calls:
 * `General/AuthenticatePublisherAccount` (account name and password for the account id, a JSON string),
 * `General/LoginPublisherAccountById` (account id and password for a session id; `...ByName` too), and
 * `Publisher/ReadPublisherLatestGlucoseValues?sessionID&minutes&maxCount` (the newest `maxCount` readings of
 * the last `minutes`, newest first, with `WT`/`ST`/`DT` as `Date(<millis>)`, `Value` and `Trend`). Wrong
 * credentials and unknown sessions get Share's HTTP 500 faults. It records every request. Closed with the scope.
 */
export const makeDexcomShare = Effect.fn("DexcomShare.make")(function* (options: DexcomShareOptions) {
  const clock = yield* Clock.Clock
  const accountId = randomUUID()
  const sessions = new Set<string>()
  const received: Array<DexcomShareRequest> = []

  const newSession = () => {
    const session = randomUUID()
    sessions.add(session)
    return { status: 200, body: session }
  }

  const latestGlucose = (query: Readonly<Record<string, string>>) => {
    if (!sessions.has(query.sessionID ?? "")) return fault("SessionIdNotFound", "Session ID not found")
    const minutes = Number(query.minutes ?? 1440)
    const maxCount = Number(query.maxCount ?? 1)
    const now = clock.currentTimeMillisUnsafe()
    const values = options.readings
      .filter((reading) => reading.timestamp <= now && reading.timestamp > now - minutes * 60_000)
      .toSorted((a, b) => b.timestamp - a.timestamp)
      .slice(0, maxCount)
      .map((reading) => ({
        WT: shareDate(reading.timestamp),
        ST: shareDate(reading.timestamp),
        DT: shareDate(reading.timestamp, "+0000"),
        Value: reading.value,
        Trend: reading.trend
      }))
    return { status: 200, body: values }
  }

  const answer = (
    method: string,
    path: string,
    query: Readonly<Record<string, string>>,
    body: unknown
  ): { readonly status: number; readonly body: unknown } => {
    if (method !== "POST") return fault("MethodNotAllowed", `${method} is not served; Share takes POST`)
    const fields = typeof body === "object" && body !== null ? (body as Record<string, unknown>) : {}
    const passwordMatches = text(fields.password) === options.password
    switch (path) {
      case `${GENERAL}/AuthenticatePublisherAccount`:
        return text(fields.accountName) === options.accountName && passwordMatches
          ? { status: 200, body: accountId }
          : fault("AccountPasswordInvalid", "Publisher account password failed")
      case `${GENERAL}/LoginPublisherAccountById`:
        return text(fields.accountId) === accountId && passwordMatches
          ? newSession()
          : fault("AccountPasswordInvalid", "Publisher account password failed")
      case `${GENERAL}/LoginPublisherAccountByName`:
        return text(fields.accountName) === options.accountName && passwordMatches
          ? newSession()
          : fault("AccountPasswordInvalid", "Publisher account password failed")
      case `${PUBLISHER}/ReadPublisherLatestGlucoseValues`:
        return latestGlucose(query)
      default:
        return { status: 404, body: { Code: "NotFound", Message: `${path} is not a Share service` } }
    }
  }

  const handle = (request: IncomingMessage, response: ServerResponse) => {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => {
      const raw = Buffer.concat(chunks).toString("utf8")
      let body: unknown = raw === "" ? undefined : raw
      try {
        if (raw !== "") body = JSON.parse(raw)
      } catch {
        // Not JSON: kept as the text it was, for the test to look at.
      }
      const url = new URL(request.url ?? "/", "https://share.test")
      const query = Object.fromEntries(url.searchParams)
      const method = request.method ?? "GET"
      const answered = answer(method, url.pathname, query, body)
      received.push({ method, path: url.pathname, query, headers: request.headers, body, status: answered.status })
      response.writeHead(answered.status, { "content-type": "application/json; charset=utf-8" })
      response.end(JSON.stringify(answered.body))
    })
  }

  const server = createServer({ cert: options.certificate.certificate, key: options.certificate.key }, handle)
  // A client that refuses the certificate ends the handshake: no failure of the stand-in's.
  server.on("tlsClientError", () => undefined)
  // share2nightscout-bridge's `request` sends `""` after its glucose request's `Content-Length: 0` (it
  // JSON-encodes the empty body it was given). Share ignores bytes after a request that said
  // `Connection: close`, and the bridge relies on it; Node's default answers them 400 and cuts the socket before
  // the real answer is out. Anything else malformed is cut, as by default.
  server.on("clientError", (error: NodeJS.ErrnoException, socket) => {
    if (error.code !== "HPE_CLOSED_CONNECTION") socket.destroy()
  })
  const port = yield* listenOnLoopback(server, "the Dexcom Share stand-in", () => server.closeAllConnections())
  return {
    /** `127.0.0.1:<port>`: what a bridge takes as its Share server (`BRIDGE_SERVER`, `CONNECT_SHARE_SERVER`). */
    host: `127.0.0.1:${port}`,
    url: `https://127.0.0.1:${port}`,
    /** The id `AuthenticatePublisherAccount` answers for the account. */
    accountId,
    /** Every request so far, in the order they arrived. */
    requests: (): ReadonlyArray<DexcomShareRequest> => [...received]
  }
})

export type DexcomShare = Effect.Success<ReturnType<typeof makeDexcomShare>>
