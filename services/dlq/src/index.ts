export * from "./DeadLetters.ts"
