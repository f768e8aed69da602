export * from "./ScheduledArchiver.ts"
