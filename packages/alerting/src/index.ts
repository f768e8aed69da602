export * from "./AlertEngine.ts"
export * from "./AlertRules.ts"
export * from "./SensorState.ts"
export * from "./Trend.ts"
