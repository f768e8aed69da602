import type { LookupAddress } from "node:dns"
import { lookup } from "node:dns"
import * as http from "node:http"
import * as https from "node:https"
import type { LookupFunction } from "node:net"
import { durationConfig } from "@dexmon/alerting"
import {
  type AllowedUrl,
  checkWebhookUrl,
  classifyAddress,
  type DeliveryMode,
  WebhookHeaders,
  webhookSignature
} from "@dexmon/domain"
import { deploymentProfile } from "@dexmon/ports"
import { Clock, Context, Duration, Effect, Layer, Option, Result, Schema } from "effect"
import { parseRetryAfter } from "./RetrySchedule.ts"

/** One delivery attempt to make: the exact body, signed with the endpoint's secret at `now` (epoch ms). */
export interface SendRequest {
  readonly url: string
  readonly body: string
  readonly secret: string
  /** `DexMon-Delivery`: the same on every attempt of a delivery, so a receiver drops repeats. */
  readonly deliveryId: string
  readonly now: number
}

/**
 * How an attempt ended. `retry`: the endpoint may answer later (timeout,
 * connection error, 429, 5xx), with the wait it asked for (ms) if any;
 * `final`: trying again would get the same answer (another 4xx, a redirect,
 * a refused address). `status` is null where no response came.
 */
export type SendResult =
  | { readonly outcome: "delivered"; readonly status: number; readonly latencyMs: number }
  | {
      readonly outcome: "retry"
      readonly status: number | null
      readonly error: string
      readonly retryAfter?: number
      readonly latencyMs: number
    }
  | { readonly outcome: "final"; readonly status: number | null; readonly error: string; readonly latencyMs: number }

/** A result before its latency is known. */
type Outcome = SendResult extends infer R ? (R extends SendResult ? Omit<R, "latencyMs"> : never) : never

/** The host name did not resolve (or resolved to nothing): perhaps a DNS hiccup, so worth another attempt. */
export class HostLookupError extends Schema.TaggedError<HostLookupError>()("HostLookupError", {
  host: Schema.String,
  message: Schema.String
}) {}

/** No HTTP response: refused, reset, TLS failed. The endpoint may be back later. */
class ConnectionError extends Schema.TaggedError<ConnectionError>()("ConnectionError", {
  message: Schema.String
}) {}

/** In production, the host resolved to an address that is not public: no connection is made. */
class AddressRefused extends Schema.TaggedError<AddressRefused>()("AddressRefused", {
  host: Schema.String,
  address: Schema.String,
  kind: Schema.String
}) {}

/** Resolves a host name to every address it has (the system resolver, or a test's). */
export type ResolveHost = (host: string) => Effect.Effect<ReadonlyArray<LookupAddress>, HostLookupError>

/** Lookups in flight, by host: concurrent attempts to one host share one. */
const lookupsInFlight = new Map<string, Promise<ReadonlyArray<LookupAddress>>>()

/**
 * The system resolver (`getaddrinfo`, as every other connection of the
 * process resolves). Lookups run on libuv's small thread pool and cannot be
 * cancelled, so concurrent attempts to one host share one lookup: a host whose
 * name server never answers holds one thread, not one per attempt, and other
 * endpoints' lookups (and the process's own) still find threads.
 */
export const systemResolve: ResolveHost = (host) =>
  Effect.tryPromise({
    try: () => {
      let pending = lookupsInFlight.get(host)
      if (pending === undefined) {
        pending = new Promise<ReadonlyArray<LookupAddress>>((resolve, reject) => {
          lookup(host, { all: true }, (error, addresses) => (error === null ? resolve(addresses) : reject(error)))
        }).finally(() => lookupsInFlight.delete(host))
        lookupsInFlight.set(host, pending)
      }
      return pending
    },
    // On interruption the shared lookup goes on for the others; this attempt just drops its answer.
    catch: (error) =>
      new HostLookupError({
        host,
        message: `cannot resolve ${host}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`
      })
  })

export interface WebhookSenderOptions {
  /** The longest an attempt may take, from resolving the host to the end of the response read (ms). */
  readonly timeout: number
  readonly mode: DeliveryMode
  /** The resolver; the system's unless a test pins answers. */
  readonly resolve?: ResolveHost | undefined
}

/** How much of a response body is read, for the error text of a failed attempt; the rest is never read. */
export const MAX_RESPONSE_BYTES = 4_096

const USER_AGENT = "DexMon-Webhooks/1"

/**
 * A `lookup` for `http.request` that answers with the addresses already
 * checked, instead of asking DNS again: what was checked is what is connected
 * to, so a name that answers a public address for the check and a cluster
 * address for the connection (DNS rebinding) reaches nothing. Node asks for
 * `all` when it tries several addresses (happy eyeballs), one otherwise.
 */
const pinnedLookup =
  (addresses: ReadonlyArray<LookupAddress>): LookupFunction =>
  (_hostname, options, callback) => {
    const family = options.family === "IPv4" ? 4 : options.family === "IPv6" ? 6 : (options.family ?? 0)
    const candidates = family === 0 ? [...addresses] : addresses.filter((entry) => entry.family === family)
    const first = candidates[0]
    if (first === undefined) {
      const error: NodeJS.ErrnoException = new Error(`no checked IPv${family} address`)
      error.code = "ENOTFOUND"
      return callback(error, "")
    }
    if (options.all === true) return callback(null, candidates)
    return callback(null, first.address, first.family)
  }

/** What the attempt got back: the status, the headers that decide a retry, and the start of the body. */
interface Answer {
  readonly status: number
  readonly statusMessage: string
  readonly retryAfter: string | undefined
  readonly location: string | undefined
  readonly body: string
}

const describeError = (error: NodeJS.ErrnoException): string =>
  error.code === undefined ? error.message : `${error.code}: ${error.message}`

/**
 * POSTs `body` to `url`, connecting only to `addresses`, and reads the status
 * and at most `MAX_RESPONSE_BYTES` of the body. A fresh connection per attempt
 * (no agent): a pooled socket would outlive the address check it was made
 * under. Interrupted (the timeout), the request is destroyed, which closes the
 * connection.
 */
const post = (
  url: URL,
  addresses: ReadonlyArray<LookupAddress>,
  headers: Readonly<Record<string, string>>,
  body: Buffer
): Effect.Effect<Answer, ConnectionError> =>
  Effect.callback<Answer, ConnectionError>((resume) => {
    const client = url.protocol === "https:" ? https : http
    const request = client.request(
      url,
      { method: "POST", headers, agent: false, lookup: pinnedLookup(addresses) },
      (response) => {
        const chunks: Array<Buffer> = []
        let size = 0
        let answered = false
        const answer = () => {
          if (answered) return
          answered = true
          resume(
            Effect.succeed({
              status: response.statusCode ?? 0,
              statusMessage: response.statusMessage ?? "",
              retryAfter: response.headers["retry-after"],
              location: response.headers.location,
              body: Buffer.concat(chunks).toString("utf8")
            })
          )
          // The rest of the body is not wanted: closing the connection discards it without reading it.
          request.destroy()
        }
        response.on("data", (chunk: Buffer) => {
          const room = MAX_RESPONSE_BYTES - size
          if (room > 0) chunks.push(chunk.subarray(0, room))
          size += chunk.length
          if (size >= MAX_RESPONSE_BYTES) answer()
        })
        response.on("end", answer)
        // The status is in: a body cut short (reset, closed early) still leaves an answer.
        response.on("error", answer)
        response.on("close", answer)
      }
    )
    // Also catches the errors that follow our own destroy(), after the answer, which are ignored.
    request.on("error", (error) => resume(Effect.fail(new ConnectionError({ message: describeError(error) }))))
    request.end(body)
    return Effect.sync(() => {
      request.destroy()
    })
  })

/** The error text of a non-2xx answer: the status and the start of what the endpoint said. */
const answerText = (answer: Answer): string => {
  const said = answer.body.replace(/\s+/g, " ").trim()
  const status = `HTTP ${answer.status}${answer.statusMessage === "" ? "" : ` ${answer.statusMessage}`}`
  return said === "" ? status : `${status}: ${said}`
}

/** What an answer means for the delivery; a `Retry-After` date counts from when the answer came (`at`). */
const judge = (answer: Answer, at: number): Outcome => {
  const { status } = answer
  if (status >= 200 && status < 300) return { outcome: "delivered", status }
  if (status >= 300 && status < 400) {
    // The target is the endpoint's to choose, so only its start goes into the recorded error.
    const to = answer.location === undefined ? "" : ` to ${answer.location.slice(0, 300)}`
    return { outcome: "final", status, error: `HTTP ${status}${to}: redirects are not followed` }
  }
  if (status === 429 || status >= 500) {
    const retryAfter = parseRetryAfter(answer.retryAfter, at)
    return { outcome: "retry", status, error: answerText(answer), ...(retryAfter === undefined ? {} : { retryAfter }) }
  }
  return { outcome: "final", status, error: answerText(answer) }
}

/**
 * Sends webhook deliveries: one signed POST per call, judged into
 * delivered / retry / final. It never fails and never retries by itself; the
 * deliverer records the result and schedules the next attempt. Every attempt
 * applies the URL policy and resolves the host again; in production it
 * refuses the host unless every address it resolves to is public (no request
 * forgery into the cluster, however the DNS answer changed since
 * registration). It then connects only to the addresses it resolved and checked.
 */
export class WebhookSender extends Context.Service<
  WebhookSender,
  {
    /** The longest an attempt takes (ms): for the deliverer's claim lease. */
    readonly timeout: number
    readonly send: (request: SendRequest) => Effect.Effect<SendResult>
  }
>()("dexmon/deliverer/WebhookSender") {
  static readonly make = (options: WebhookSenderOptions): WebhookSender["Service"] => {
    const { timeout, mode } = options
    const resolve = options.resolve ?? systemResolve

    /** The addresses to connect to: the literal, or every address the name resolves to, all public in production. */
    const addressesOf = Effect.fnUntraced(function* (target: AllowedUrl) {
      const addresses: ReadonlyArray<LookupAddress> =
        target.address !== undefined
          ? [{ address: target.address, family: target.address.includes(":") ? 6 : 4 }]
          : yield* resolve(target.host)
      if (addresses.length === 0) {
        return yield* new HostLookupError({ host: target.host, message: `${target.host} resolves to no address` })
      }
      if (mode === "production") {
        for (const { address } of addresses) {
          const kind = classifyAddress(address)
          if (kind !== "public") return yield* new AddressRefused({ host: target.host, address, kind })
        }
      }
      return addresses
    })

    const attempt = Effect.fnUntraced(function* (target: AllowedUrl, request: SendRequest) {
      const addresses = yield* addressesOf(target)
      const timestamp = Math.floor(request.now / 1_000)
      const body = Buffer.from(request.body, "utf8")
      const answer = yield* post(
        target.url,
        addresses,
        {
          "content-type": "application/json",
          "content-length": String(body.length),
          "user-agent": USER_AGENT,
          [WebhookHeaders.timestamp]: String(timestamp),
          [WebhookHeaders.delivery]: request.deliveryId,
          [WebhookHeaders.signature]: webhookSignature(request.secret, timestamp, request.body)
        },
        body
      )
      return judge(answer, yield* Clock.currentTimeMillis)
    })

    const send = Effect.fn("WebhookSender.send")(function* (request: SendRequest) {
      const started = yield* Clock.currentTimeMillis
      const target = checkWebhookUrl(request.url, mode)
      const outcome: Outcome = Result.isFailure(target)
        ? { outcome: "final", status: null, error: `url refused: ${target.failure.message}` }
        : yield* attempt(target.success, request).pipe(
            Effect.timeoutOption(Duration.millis(timeout)),
            Effect.map(
              Option.getOrElse(
                (): Outcome => ({ outcome: "retry", status: null, error: `no answer within ${timeout} ms` })
              )
            ),
            Effect.catchTags({
              HostLookupError: (error): Effect.Effect<Outcome> =>
                Effect.succeed({ outcome: "retry", status: null, error: error.message }),
              ConnectionError: (error): Effect.Effect<Outcome> =>
                Effect.succeed({ outcome: "retry", status: null, error: `connection failed: ${error.message}` }),
              AddressRefused: (error): Effect.Effect<Outcome> =>
                Effect.succeed({
                  outcome: "final",
                  status: null,
                  // The address is not named: an endpoint's owner must not learn the cluster's addresses from it.
                  error: `${error.host} resolves to an address that is not public (${error.kind})`
                })
            })
          )
      const latencyMs = (yield* Clock.currentTimeMillis) - started
      yield* Effect.annotateCurrentSpan({
        "dexmon.delivery_id": request.deliveryId,
        "dexmon.webhook.outcome": outcome.outcome,
        ...(outcome.status === null ? {} : { "http.response.status_code": outcome.status })
      })
      const result: SendResult = { ...outcome, latencyMs }
      return result
    })

    return WebhookSender.of({ timeout, send })
  }

  static readonly layer = (options: WebhookSenderOptions) => Layer.succeed(WebhookSender, WebhookSender.make(options))

  /**
   * `DEXMON_WEBHOOK_TIMEOUT` (default `10s`) bounds each attempt;
   * `DEXMON_PROFILE=production` enforces https and public addresses.
   */
  static readonly layerConfig = Layer.effect(
    WebhookSender,
    Effect.gen(function* () {
      const timeout = yield* durationConfig("DEXMON_WEBHOOK_TIMEOUT", 10_000)
      const mode = yield* deploymentProfile
      return WebhookSender.make({ timeout, mode })
    })
  )
}
