import { Config, Context, Effect, Layer } from "effect"
import type { TopicSpec } from "./EventLog.ts"

/** The topics of the design, by role. */
export interface TopicNames {
  readonly events: string
  readonly eventsDlq: string
  /** The alert engine's notification decisions, keyed by sensor (the deliverer and live stream read them). */
  readonly alerts: string
  readonly alertsDlq: string
  /** Webhook deliveries that failed for good (after the retry budget, or refused), for `pnpm dlq` to replay. */
  readonly deliveryDlq: string
}

export const defaultTopicNames: TopicNames = {
  events: "glucose.events",
  eventsDlq: "glucose.events.dlq",
  alerts: "glucose.alerts",
  alertsDlq: "glucose.events.alerts.dlq",
  deliveryDlq: "glucose.alerts.delivery.dlq"
}

/**
 * The topics DexMon uses and the ones an event-log layer creates at start when
 * they are missing. `DEXMON_TOPIC_PREFIX` puts a whole deployment (or a test
 * run) in topics of its own on a shared cluster.
 */
export class Topics extends Context.Service<
  Topics,
  {
    readonly names: TopicNames
    readonly specs: ReadonlyArray<TopicSpec>
  }
>()("dexmon/ports/event-log/Topics") {
  static readonly make = (partitions: number, prefix = "") => {
    const names: TopicNames = {
      events: `${prefix}${defaultTopicNames.events}`,
      eventsDlq: `${prefix}${defaultTopicNames.eventsDlq}`,
      alerts: `${prefix}${defaultTopicNames.alerts}`,
      alertsDlq: `${prefix}${defaultTopicNames.alertsDlq}`,
      deliveryDlq: `${prefix}${defaultTopicNames.deliveryDlq}`
    }
    return Topics.of({ names, specs: Object.values(names).map((name) => ({ name, partitions })) })
  }

  /** Just these topics to create, for tests of the event-log port itself. */
  static readonly exactly = (specs: ReadonlyArray<TopicSpec>) =>
    Layer.succeed(Topics, Topics.of({ names: defaultTopicNames, specs }))

  static readonly layerConfig = Layer.effect(
    Topics,
    Effect.gen(function* () {
      const partitions = yield* Config.Int("DEXMON_EVENT_PARTITIONS").pipe(Config.withDefault(8))
      const prefix = yield* Config.String("DEXMON_TOPIC_PREFIX").pipe(Config.withDefault(""))
      return Topics.make(partitions, prefix)
    })
  )
}
