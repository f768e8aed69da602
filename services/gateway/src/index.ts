export * from "./GatewayHttp.ts"
