export * from "./EmbeddedPostgresTest.ts"
export * from "./RequiredServer.ts"
export * from "./ServerPostgresTest.ts"
export * from "./ReadingHistory.ts"
