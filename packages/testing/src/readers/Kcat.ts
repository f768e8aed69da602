import { spawn } from "node:child_process"
import { Clock, Duration, Effect, Option, Schedule, Schema } from "effect"
import { ensureKcat, type Kcat } from "../../../../infra/kcat/Kcat.ts"

/** A message as kcat read it, independently of kafkajs and of the project's event-log layers. */
export interface KcatRecord {
  /** null for a message without a key (kcat tells it apart from an empty one). */
  readonly key: string | null
  /** The payload as UTF-8 text (kcat's `-J` has no binary form; bytes that are not UTF-8 come back as U+FFFD); null for a tombstone. */
  readonly value: string | null
  /** The headers by name; when a name repeats, the last value. */
  readonly headers: Readonly<Record<string, string>>
  readonly partition: number
  readonly offset: number
  /** The message's log time (CreateTime unless the topic says LogAppendTime), epoch ms. */
  readonly timestamp: number
}

export class KcatError extends Schema.TaggedError<KcatError>()("KcatError", { message: Schema.String }) {}

/**
 * One line of `kcat -J`. Headers are a flat array of names and values (["k1", "v1", "k2", "v2"]) and
 * absent when the message has none; key and payload are null when the message has none.
 */
const Envelope = Schema.Struct({
  topic: Schema.String,
  partition: Schema.Number,
  offset: Schema.Number,
  ts: Schema.Number,
  headers: Schema.optionalKey(Schema.Array(Schema.NullOr(Schema.String))),
  key: Schema.NullOr(Schema.String),
  payload: Schema.NullOr(Schema.String)
})
const decodeEnvelope = Schema.decodeUnknownEffect(Schema.fromJsonString(Envelope))

/** What one run of kcat printed and how it ended. */
interface Run {
  readonly exitCode: number | null
  readonly stdout: string
  readonly stderr: string
}

/** kcat from the harness (the machine's, or fetched under .infra on first use): run `command` with `env` added. */
export const kcatTool = Effect.tryPromise({
  try: () => ensureKcat(),
  catch: (cause) => new KcatError({ message: cause instanceof Error ? cause.message : String(cause) })
})

/**
 * Runs kcat to completion and collects its output. On interruption (the caller's timeout) the process
 * is killed; what it printed so far stays in `sofar`, for the error that follows.
 */
const runKcat = (tool: Kcat, args: ReadonlyArray<string>, sofar: { stdout: string; stderr: string }) =>
  Effect.callback<Run, KcatError>((resume) => {
    const child = spawn(tool.command, args, {
      env: { ...process.env, ...tool.env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      sofar.stdout += chunk
    })
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      sofar.stderr += chunk
    })
    child.once("error", (error) =>
      resume(Effect.fail(new KcatError({ message: `could not run ${tool.command}: ${error.message}` })))
    )
    child.once("close", (exitCode) => resume(Effect.succeed({ exitCode, stdout: sofar.stdout, stderr: sofar.stderr })))
    return Effect.sync(() => {
      child.kill("SIGKILL")
    })
  })

const toRecord = (envelope: typeof Envelope.Type): KcatRecord => {
  const headers: Record<string, string> = {}
  const flat = envelope.headers ?? []
  for (let i = 0; i + 1 < flat.length; i += 2) headers[flat[i] ?? ""] = flat[i + 1] ?? ""
  return {
    key: envelope.key,
    value: envelope.payload,
    headers,
    partition: envelope.partition,
    offset: envelope.offset,
    timestamp: envelope.ts
  }
}

/** The records of one run's output, one JSON envelope a line. */
const parse = (stdout: string) =>
  Effect.forEach(
    stdout.split("\n").filter((line) => line.trim() !== ""),
    (line) =>
      decodeEnvelope(line).pipe(
        Effect.map(toRecord),
        Effect.mapError(
          (error) =>
            new KcatError({ message: `kcat printed a line that is not an envelope: ${line}\n${error.message}` })
        )
      )
  )

/** The records seen, one a line as partition@offset, the first 50 of them: enough to tell what went wrong. */
const describe = (records: ReadonlyArray<KcatRecord>): string =>
  records.length === 0
    ? "no records"
    : records
        .slice(0, 50)
        .map((r) => `${r.partition}@${r.offset} key=${JSON.stringify(r.key)} value=${JSON.stringify(r.value)}`)
        .concat(records.length > 50 ? [`... and ${records.length - 50} more`] : [])
        .join("\n")

/**
 * Reads `topic` from the beginning with kcat (`kcat -C -b <brokers> -t <topic> -o beginning -e -J`), an
 * independent client: every partition to its end, then kcat exits. Runs it again, `every` apart, until at
 * least `count` records (those with key `key`, when given) are there, and answers them (only those with
 * that key, when given) in the order kcat printed them: each partition's in offset order. Fails with a
 * `KcatError` naming what it saw (and kcat's last error output) when `timeout` passes first, a topic that
 * does not exist included. Waits on the wall clock: in `it.effect`, use a layer with `excludeTestServices`
 * or `it.live`.
 */
export const readTopicWithKcat = Effect.fn("Kcat.readTopicWithKcat")(function* (options: {
  readonly brokers: string
  readonly topic: string
  readonly key?: string
  readonly count: number
  /** Default 30 seconds. */
  readonly timeout?: Duration.Input
  /** Between runs; default 200 millis. */
  readonly every?: Duration.Input
}) {
  const tool = yield* kcatTool
  const args = ["-C", "-b", options.brokers, "-t", options.topic, "-o", "beginning", "-e", "-J"]
  const timeout = Duration.fromInputUnsafe(options.timeout ?? "30 seconds")
  const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(timeout)
  const matching = (records: ReadonlyArray<KcatRecord>) =>
    options.key === undefined ? records : records.filter((record) => record.key === options.key)
  let seen: ReadonlyArray<KcatRecord> = []
  let finished = 0
  let lastError = ""
  /** One run of kcat, bounded by what is left of the deadline: whether it saw enough, or no time is left. */
  const run = Effect.gen(function* () {
    const remaining = deadline - (yield* Clock.currentTimeMillis)
    if (remaining <= 0) return "out of time" as const
    const sofar = { stdout: "", stderr: "" }
    const result = yield* runKcat(tool, args, sofar).pipe(Effect.timeoutOption(remaining))
    if (Option.isNone(result)) {
      // The last run cut short says nothing when earlier ones finished; when none did, it is the story.
      if (finished === 0) {
        lastError = `no run of kcat finished in time (does it reach the broker?); it printed:\n${sofar.stderr}${sofar.stdout}`
      }
      return "out of time" as const
    }
    finished += 1
    if (result.value.exitCode !== 0) {
      // A topic that is not there yet (or a broker still starting) fails this run; the next may see it.
      lastError = `kcat exited ${result.value.exitCode}: ${result.value.stderr.trim()}`
      return "again" as const
    }
    lastError = ""
    seen = matching(yield* parse(result.value.stdout))
    return seen.length >= options.count ? ("enough" as const) : ("again" as const)
  })
  const ended = yield* run.pipe(
    Effect.repeat({ schedule: Schedule.spaced(options.every ?? "200 millis"), until: (outcome) => outcome !== "again" })
  )
  if (ended === "enough") return seen
  const wanted = options.key === undefined ? "records" : `records with key ${JSON.stringify(options.key)}`
  return yield* new KcatError({
    message:
      `kcat read ${seen.length} of the ${options.count} ${wanted} expected in ${options.topic} within ${Duration.format(timeout)} ` +
      `(${tool.command} ${args.join(" ")})\nit saw:\n${describe(seen)}${lastError === "" ? "" : `\n${lastError}`}`
  })
})
