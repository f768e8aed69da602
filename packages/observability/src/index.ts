export * as Metrics from "./Metrics.ts"
export * from "./Redaction.ts"
export * from "./Tracing.ts"
