import { EventLogLive, LoggerLive } from "@dexmon/platform"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Console, Effect, Layer } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { DeadLetters } from "./DeadLetters.ts"

const queue = Flag.Literals("queue", ["events", "alerts", "deliveries"]).pipe(
  Flag.withDescription(
    "events: glucose.events.dlq (processor); alerts: glucose.events.alerts.dlq (notifier); deliveries: glucose.alerts.delivery.dlq (deliverer)"
  ),
  Flag.withDefault("events")
)

const list = Command.make(
  "list",
  { queue, json: Flag.Boolean("json").pipe(Flag.withDefault(false), Flag.withDescription("One JSON object per line")) },
  Effect.fn(function* ({ queue, json }) {
    const deadLetters = yield* DeadLetters
    const letters = yield* deadLetters.list(queue)
    for (const letter of letters) {
      yield* Console.log(
        json
          ? JSON.stringify(letter)
          : `${letter.partition}:${letter.offset}  key=${letter.key}  ${letter.errorTag}: ${letter.errorMessage}  from ${letter.source}, ${letter.attempts} attempt(s) since ${letter.firstFailureAt}\n    ${letter.value.slice(0, 200)}`
      )
    }
    yield* Console.log(`${letters.length} dead letter(s) in ${deadLetters.topicOf(queue)}`)
  })
).pipe(Command.withDescription("List the messages of a dead-letter topic"))

const replay = Command.make(
  "replay",
  {
    queue,
    positions: Argument.String("partition:offset").pipe(
      Argument.withDescription("Which dead letters to replay (as `list` prints them), or `all`"),
      Argument.variadic({ min: 1 })
    )
  },
  Effect.fn(function* ({ queue, positions }) {
    const deadLetters = yield* DeadLetters
    const count = yield* deadLetters.replay(queue, positions.includes("all") ? "all" : new Set(positions))
    yield* Console.log(
      `replayed ${count} message(s) from ${deadLetters.topicOf(queue)} to ${queue === "deliveries" ? "the alerts topic, each for its endpoint" : "the events topic"}`
    )
  })
).pipe(
  Command.withDescription(
    "Append dead letters back to their source topic (glucose.events; glucose.alerts for deliveries), with their original key, value, headers and log time"
  )
)

Command.make("dlq").pipe(
  Command.withDescription("Inspect and replay DexMon's dead-letter topics"),
  Command.withSubcommands([list, replay]),
  Command.run({ version: "1.0.0" }),
  Effect.provide(Layer.mergeAll(NodeServices.layer, LoggerLive, DeadLetters.layer.pipe(Layer.provide(EventLogLive)))),
  NodeRuntime.runMain
)
