export * from "./Ingestion.ts"
export * from "./IngestionHttp.ts"
