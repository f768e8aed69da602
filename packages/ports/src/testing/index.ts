export * from "./EmbeddedPostgresTest.ts"
export * from "./ReadingHistory.ts"
export * from "./RequiredServer.ts"
export * from "./ServerPostgresTest.ts"
