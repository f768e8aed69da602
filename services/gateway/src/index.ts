export * from "./AlertControls.ts"
export * from "./GatewayHttp.ts"
export * from "./UserAlertSettings.ts"
export * from "./Webhooks.ts"
