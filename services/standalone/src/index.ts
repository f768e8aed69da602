export * from "./Standalone.ts"
