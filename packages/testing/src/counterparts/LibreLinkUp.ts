import { randomBytes, randomUUID } from "node:crypto"
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http"
import { createServer } from "node:https"
import { Clock, Effect } from "effect"
import type { IssuedCertificate } from "../Certificates.ts"
import { listenOnLoopback } from "./Loopback.ts"

/**
 * One glucose value as LibreView holds it for a follower: when the sensor measured it (epoch millis, whole
 * seconds: LibreView's times have no milliseconds), mg/dL, and the sensor's arrow (`TrendArrow`: 1 falling
 * fast, 2 falling, 3 steady, 4 rising, 5 rising fast).
 */
export interface LinkUpReading {
  readonly timestamp: number
  readonly value: number
  readonly trendArrow: 1 | 2 | 3 | 4 | 5
}

/** One request as the stand-in saw it: its JSON body parsed (the text when not JSON), and what it answered. */
export interface LibreLinkUpRequest {
  readonly method: string
  readonly path: string
  readonly headers: IncomingHttpHeaders
  readonly body: unknown
  readonly status: number
}

export interface LibreLinkUpOptions {
  /** The LibreLinkUp follower account. */
  readonly email: string
  readonly password: string
  /** What the one patient the follower follows measured, in any order. */
  readonly readings: ReadonlyArray<LinkUpReading>
  /** LibreView is HTTPS only: the certificate it presents, for 127.0.0.1. */
  readonly certificate: IssuedCertificate
  /** The patient phone's offset from UTC, in minutes, for `Timestamp` (`FactoryTimestamp` is UTC); default 0. */
  readonly patientUtcOffsetMinutes?: number
}

const pad = (value: number) => String(value).padStart(2, "0")

/** LibreView's time format, `M/D/YYYY h:mm:ss AM`, of `millis` shifted by `offsetMinutes` (no zone is written). */
const linkUpTime = (millis: number, offsetMinutes: number) => {
  const at = new Date(millis + offsetMinutes * 60_000)
  const hours = at.getUTCHours()
  const clock = `${hours % 12 === 0 ? 12 : hours % 12}:${pad(at.getUTCMinutes())}:${pad(at.getUTCSeconds())}`
  return `${at.getUTCMonth() + 1}/${at.getUTCDate()}/${at.getUTCFullYear()} ${clock} ${hours < 12 ? "AM" : "PM"}`
}

const TARGET_LOW = 70
const TARGET_HIGH = 180

/**
 * A LibreLinkUp of the test's own (the follower API behind api-<region>.libreview.io): an HTTPS server on
 * 127.0.0.1 with one follower account following one patient, through LibreLinkUp's three calls:
 * `POST /llu/auth/login` (`{email, password}` for `data.authTicket.token`; wrong credentials answer
 * `status: 2` as LibreView does), `GET /llu/connections` (the patient, with the newest reading as
 * `glucoseMeasurement`) and `GET /llu/connections/<patientId>/graph` (`data.graphData`: every reading so far,
 * oldest first, which is where LibreView keeps the history; `data.connection.glucoseMeasurement`: the newest,
 * which alone carries `TrendArrow`). Times are `FactoryTimestamp` (UTC) and `Timestamp` (the patient's
 * phone), both `M/D/YYYY h:mm:ss AM`. The two reads need `Authorization: Bearer <token>`. It records every
 * request. Closed with the scope.
 */
export const makeLibreLinkUp = Effect.fn("LibreLinkUp.make")(function* (options: LibreLinkUpOptions) {
  const clock = yield* Clock.Clock
  const offset = options.patientUtcOffsetMinutes ?? 0
  const userId = randomUUID()
  const patientId = randomUUID()
  const token = randomBytes(24).toString("base64url")
  const received: Array<LibreLinkUpRequest> = []

  const ticket = () => ({
    token,
    expires: Math.floor(clock.currentTimeMillisUnsafe() / 1000) + 15_552_000,
    duration: 15_552_000_000
  })
  const item = (reading: LinkUpReading) => ({
    FactoryTimestamp: linkUpTime(reading.timestamp, 0),
    Timestamp: linkUpTime(reading.timestamp, offset),
    type: 0,
    ValueInMgPerDl: reading.value,
    MeasurementColor: reading.value < TARGET_LOW ? 3 : reading.value > TARGET_HIGH ? 2 : 1,
    GlucoseUnits: 1,
    Value: reading.value,
    // LibreView's HI and LO: beyond what the sensor reads.
    isHigh: reading.value > 500,
    isLow: reading.value < 40
  })
  /** What the patient's sensor has measured by now, oldest first. */
  const measured = () => {
    const now = clock.currentTimeMillisUnsafe()
    return options.readings.filter((reading) => reading.timestamp <= now).toSorted((a, b) => a.timestamp - b.timestamp)
  }
  const connection = () => {
    const newest = measured().at(-1)
    const current =
      newest === undefined ? null : { ...item(newest), type: 1, TrendArrow: newest.trendArrow, TrendMessage: null }
    return {
      id: patientId,
      patientId,
      country: "DE",
      status: 2,
      firstName: "Test",
      lastName: "Patient",
      targetLow: TARGET_LOW,
      targetHigh: TARGET_HIGH,
      uom: 1,
      sensor: { deviceId: "", sn: "0M000TEST", a: 0, w: 60, pt: 4, s: false, lj: false },
      glucoseMeasurement: current,
      glucoseItem: current,
      glucoseAlarm: null,
      created: 0
    }
  }

  const answer = (
    method: string,
    path: string,
    headers: IncomingHttpHeaders,
    body: unknown
  ): { readonly status: number; readonly body: unknown } => {
    if (method === "POST" && path === "/llu/auth/login") {
      const fields = typeof body === "object" && body !== null ? (body as Record<string, unknown>) : {}
      if (fields.email !== options.email || fields.password !== options.password) {
        return { status: 200, body: { status: 2, error: { message: "notAuthenticated" } } }
      }
      return {
        status: 200,
        body: {
          status: 0,
          data: {
            user: { id: userId, email: options.email, country: "DE", uom: "1", accountType: "pat" },
            messages: { unread: 0 },
            notifications: { unresolved: 0 },
            authTicket: ticket(),
            invitations: null
          }
        }
      }
    }
    if (method !== "GET") return { status: 405, body: { message: `${method} ${path} is not served` } }
    if (headers.authorization !== `Bearer ${token}`) {
      return { status: 401, body: { message: "invalid or expired jwt" } }
    }
    if (path === "/llu/connections") return { status: 200, body: { status: 0, data: [connection()], ticket: ticket() } }
    if (path === `/llu/connections/${patientId}/graph`) {
      return {
        status: 200,
        body: {
          status: 0,
          data: { connection: connection(), activeSensors: [], graphData: measured().map(item) },
          ticket: ticket()
        }
      }
    }
    return { status: 404, body: { message: `${path} is not a LibreLinkUp call` } }
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
      const path = new URL(request.url ?? "/", "https://libreview.test").pathname
      const method = request.method ?? "GET"
      const answered = answer(method, path, request.headers, body)
      received.push({ method, path, headers: request.headers, body, status: answered.status })
      response.writeHead(answered.status, { "content-type": "application/json; charset=utf-8" })
      response.end(JSON.stringify(answered.body))
    })
  }

  const server = createServer({ cert: options.certificate.certificate, key: options.certificate.key }, handle)
  // A client that refuses the certificate ends the handshake: no failure of the stand-in's.
  server.on("tlsClientError", () => undefined)
  const port = yield* listenOnLoopback(server, "the LibreLinkUp stand-in", () => server.closeAllConnections())
  return {
    /** `127.0.0.1:<port>`: what an uploader takes as its LibreLinkUp server (`CONNECT_LINK_UP_SERVER`). */
    host: `127.0.0.1:${port}`,
    url: `https://127.0.0.1:${port}`,
    patientId,
    /** Every request so far, in the order they arrived. */
    requests: (): ReadonlyArray<LibreLinkUpRequest> => [...received]
  }
})

export type LibreLinkUp = Effect.Success<ReturnType<typeof makeLibreLinkUp>>
