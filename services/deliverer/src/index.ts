export * from "./Deliverer.ts"
export * from "./RetrySchedule.ts"
export * from "./WebhookSender.ts"
