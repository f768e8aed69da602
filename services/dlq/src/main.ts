import { EventLogLive, LoggerLive, SqlClientLive } from "@dexmon/platform"
import { TopicNames } from "@dexmon/ports"
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Console, Effect, Layer } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { DeadLetters } from "./DeadLetters.ts"

const topic = Flag.Literals("topic", [TopicNames.eventsDlq, TopicNames.alertsDlq]).pipe(
  Flag.withDescription("The dead-letter topic"),
  Flag.withDefault(TopicNames.eventsDlq)
)

const list = Command.make(
  "list",
  { topic, json: Flag.Boolean("json").pipe(Flag.withDefault(false), Flag.withDescription("One JSON object per line")) },
  Effect.fn(function* ({ topic, json }) {
    const letters = yield* (yield* DeadLetters).list(topic)
    for (const letter of letters) {
      yield* Console.log(
        json
          ? JSON.stringify(letter)
          : `${letter.partition}:${letter.offset}  key=${letter.key}  ${letter.errorTag}: ${letter.errorMessage}  from ${letter.source}, ${letter.attempts} attempt(s) since ${letter.firstFailureAt}\n    ${letter.value.slice(0, 200)}`
      )
    }
    yield* Console.log(`${letters.length} dead letter(s) in ${topic}`)
  })
).pipe(Command.withDescription("List the messages of a dead-letter topic"))

const replay = Command.make(
  "replay",
  {
    topic,
    positions: Argument.String("partition:offset").pipe(
      Argument.withDescription("Which dead letters to replay (as `list` prints them), or `all`"),
      Argument.variadic({ min: 1 })
    )
  },
  Effect.fn(function* ({ topic, positions }) {
    const chosen = positions.includes("all") ? ("all" as const) : new Set(positions)
    const count = yield* (yield* DeadLetters).replay(topic, chosen)
    yield* Console.log(`replayed ${count} message(s) from ${topic} to ${TopicNames.events}`)
  })
).pipe(
  Command.withDescription("Append dead letters back to glucose.events, with their original key, value and headers")
)

Command.make("dlq").pipe(
  Command.withDescription("Inspect and replay DexMon's dead-letter topics"),
  Command.withSubcommands([list, replay]),
  Command.run({ version: "1.0.0" }),
  Effect.provide(
    Layer.mergeAll(
      NodeServices.layer,
      LoggerLive,
      DeadLetters.layer.pipe(Layer.provide(EventLogLive), Layer.provide(SqlClientLive))
    )
  ),
  NodeRuntime.runMain
)
