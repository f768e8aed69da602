export * as Metrics from "./Metrics.ts"
export * from "./Tracing.ts"
