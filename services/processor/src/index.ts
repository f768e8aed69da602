export * from "./Processor.ts"
