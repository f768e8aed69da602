export * from "./EmbeddedPostgresTest.ts"
