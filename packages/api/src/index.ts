export * from "./Api.ts"
export * from "./Errors.ts"
export * from "./Groups.ts"
export * from "./Middleware.ts"
