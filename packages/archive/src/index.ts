export * from "./ArchiveLayout.ts"
export * from "./Archiver.ts"
export * from "./ReadingsParquet.ts"
export * from "./ReadingsQuery.ts"
