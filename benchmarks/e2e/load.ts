// The load: autocannon (not DexMon code) posting a workload's requests, closed loop (each connection
// sends its next request when the last one is answered) or at a fixed offered rate.
import autocannon from "autocannon"
import type { Probe, Request, Workload } from "./workload.ts"

export interface LoadOptions {
  readonly baseUrl: string
  readonly workload: Workload
  readonly connections: number
  /** Seconds to run; or a fixed number of requests with `amount`. */
  readonly seconds?: number
  readonly amount?: number
  /** Requests per second over all connections (open loop); closed loop without it. */
  readonly rate?: number
  readonly onProbe: (probe: Probe) => void
  readonly onAlertProbe: (probe: Probe) => void
  /** A probe's request was accepted: its reading must appear. */
  readonly onConfirmed: (probe: Probe) => void
}

export interface LoadResult {
  readonly seconds: number
  readonly requests: number
  readonly acceptedRequests: number
  readonly acceptedReadings: number
  readonly sentReadings: number
  /** Answers other than 202, by status, and connection errors or timeouts. */
  readonly refused: Record<string, number>
  readonly errors: number
  readonly postP50: number
  readonly postP99: number
  readonly readingsPerSecond: number
}

export const runLoad = async (options: LoadOptions): Promise<LoadResult> => {
  let sentReadings = 0
  let acceptedReadings = 0
  let acceptedRequests = 0
  const refused: Record<string, number> = {}
  const started = performance.now()
  const result = await autocannon({
    url: options.baseUrl,
    connections: options.connections,
    timeout: 30,
    ...(options.amount === undefined ? { duration: options.seconds ?? 30 } : { amount: options.amount }),
    ...(options.rate === undefined ? {} : { overallRate: options.rate }),
    requests: [
      {
        method: "POST",
        path: "/api/v1/glucose/sensor",
        setupRequest: (request, context) => {
          const next = options.workload.next(Date.now(), performance.now())
          // One request in flight per connection: its context names the request the next answer is for.
          context.pending = next
          // Watched from the moment it is sent, so a reading stored before its answer arrives counts right.
          if (next.probe !== undefined) options.onProbe(next.probe)
          for (const probe of next.alertProbes) options.onAlertProbe(probe)
          return {
            ...request,
            headers: { "content-type": "application/json", "x-user-id": next.user },
            body: next.body
          }
        },
        onResponse: (status, _body, context) => {
          const request = context.pending as Request | undefined
          context.pending = undefined
          if (request === undefined) return
          sentReadings += request.readings
          if (status === 202) {
            acceptedRequests++
            acceptedReadings += request.readings
            options.workload.accept(request)
            if (request.probe !== undefined) options.onConfirmed(request.probe)
            for (const probe of request.alertProbes) options.onConfirmed(probe)
          } else {
            refused[status] = (refused[status] ?? 0) + 1
          }
        }
      }
    ]
  })
  const seconds = options.amount === undefined ? result.duration : (performance.now() - started) / 1000
  return {
    seconds,
    requests: acceptedRequests + Object.values(refused).reduce((a, b) => a + b, 0),
    acceptedRequests,
    acceptedReadings,
    sentReadings,
    refused,
    errors: result.errors,
    postP50: result.latency.p50,
    postP99: result.latency.p99,
    readingsPerSecond: acceptedReadings / seconds
  }
}
