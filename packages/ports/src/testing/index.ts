export * from "./EmbeddedPostgresTest.ts"
export * from "./RequiredServer.ts"
export * from "./ServerPostgresTest.ts"
