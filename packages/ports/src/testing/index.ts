export * from "./EmbeddedPostgresTest.ts"
export * from "./RequiredServer.ts"
