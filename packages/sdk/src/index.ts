export * from "./DexMonClient.ts"
