// The part of autocannon's programmatic API the end-to-end benchmark uses (the package ships no types).
declare module "autocannon" {
  interface Histogram {
    readonly average: number
    readonly p50: number
    readonly p99: number
    readonly max: number
  }
  interface Result {
    readonly latency: Histogram
    readonly duration: number
    readonly errors: number
    readonly timeouts: number
    readonly non2xx: number
    readonly statusCodeStats: Record<string, { readonly count: number }>
    readonly "2xx": number
  }
  interface RawRequest {
    method?: string
    path?: string
    headers?: Record<string, string>
    body?: string
  }
  interface Options {
    readonly url: string
    readonly connections?: number
    readonly duration?: number
    readonly amount?: number
    readonly overallRate?: number
    readonly timeout?: number
    readonly requests?: ReadonlyArray<
      RawRequest & {
        readonly setupRequest?: (request: RawRequest, context: Record<string, unknown>) => RawRequest
        readonly onResponse?: (status: number, body: string, context: Record<string, unknown>) => void
      }
    >
  }
  function autocannon(options: Options): Promise<Result>
  export default autocannon
}
