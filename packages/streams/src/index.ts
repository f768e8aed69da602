export * from "./Combinators.ts"
export * from "./DecodedBatch.ts"
