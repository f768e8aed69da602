import { Config, Context, Effect, Layer } from "effect"
import type { TopicSpec } from "./EventLog.ts"

/** The topics of the design. */
export const TopicNames = {
  events: "glucose.events",
  eventsDlq: "glucose.events.dlq",
  alertsDlq: "glucose.events.alerts.dlq"
} as const

/** The topics an event-log layer creates at start when they are missing, with their partition counts. */
export class Topics extends Context.Service<Topics, ReadonlyArray<TopicSpec>>()("dexmon/ports/event-log/Topics") {
  static readonly make = (partitions: number): ReadonlyArray<TopicSpec> =>
    Object.values(TopicNames).map((name) => ({ name, partitions }))

  static readonly layerConfig = Layer.effect(
    Topics,
    Effect.map(Config.Int("DEXMON_EVENT_PARTITIONS").pipe(Config.withDefault(8)), Topics.make)
  )
}
