import { durationConfig } from "@dexmon/alerting"
import type { LiveEvent } from "@dexmon/api"
import {
  AlertActionEvent,
  type AlertNotification,
  decodeAlertNotification,
  decodeEventsTopicBytes,
  type GlucoseEvent,
  InvalidCursor,
  type UserId
} from "@dexmon/domain"
import { type ConsumerRecord, EventLog, Topics } from "@dexmon/ports"
import { Clock, Config, Context, Effect, Layer, Option, PubSub, Schedule, Schema, Stream } from "effect"

/** Where the live feed stands: the next offset of every partition of the two topics it follows. */
interface Positions {
  readonly e: Record<string, number>
  readonly a: Record<string, number>
}

/** One item of the feed: whose it is, where it sits, and the event the app gets. */
interface FeedItem {
  readonly topic: "e" | "a"
  readonly partition: number
  readonly offset: number
  /** The record's log time: the replay buffer keeps `DEXMON_STREAM_REPLAY` of them. */
  readonly at: number
  readonly userId: UserId
  readonly event:
    | { readonly event: "reading"; readonly data: GlucoseEvent }
    | { readonly event: "alert"; readonly data: AlertNotification }
}

const CursorJson = Schema.fromJsonString(
  Schema.Struct({
    e: Schema.Record(Schema.String, Schema.Int),
    a: Schema.Record(Schema.String, Schema.Int)
  })
)
const encodeCursorJson = Schema.encodeSync(CursorJson)
const decodeCursorJson = Schema.decodeUnknownOption(CursorJson)

/** The cursor an event's id carries: every partition's next offset, opaque to the app (base64url JSON). */
export const encodeLiveCursor = (positions: Positions): string =>
  Buffer.from(encodeCursorJson(positions)).toString("base64url")

export const decodeLiveCursor = (cursor: string): Option.Option<Positions> =>
  decodeCursorJson(Buffer.from(cursor, "base64url").toString("utf8"))

export const LiveFeedConfig = Config.all({
  /** How far back a reconnect can resume: the feed keeps this much of both topics in memory. */
  replay: durationConfig("DEXMON_STREAM_REPLAY", 60 * 60_000),
  /** At most this many items kept for replay, whatever the span (memory bound). */
  buffer: Config.Int("DEXMON_STREAM_BUFFER").pipe(Config.withDefault(100_000)),
  heartbeat: durationConfig("DEXMON_STREAM_HEARTBEAT", 15_000)
})

const utf8 = new TextDecoder()

/**
 * The gateway's live feed: one follower per topic (`glucose.events` and
 * `glucose.alerts`) for the whole process, whatever the number of open
 * streams, from the last `DEXMON_STREAM_REPLAY` of each, into a bounded
 * in-memory replay buffer and a broadcast to the open streams. Every replica
 * follows every partition (no consumer group shares them), so a stream
 * opened on any replica sees every event of its user.
 *
 * A stream starts at the feed's current positions, or at the cursor of the
 * `Last-Event-ID` it was given: the buffered items after the cursor first,
 * then the live ones, each partition's offsets rising, so nothing is repeated
 * and order per sensor (one partition) is kept. Each event's id is the cursor
 * after it. A cursor older than the buffer resumes at the buffer's start.
 */
export class LiveFeed extends Context.Service<
  LiveFeed,
  {
    /**
     * The caller's stream, from the feed's current positions, or from the
     * cursor of the `Last-Event-ID` given (refused when it is not one this
     * stream sent).
     */
    readonly open: (
      userId: UserId,
      lastEventId: string | undefined
    ) => Effect.Effect<Stream.Stream<LiveEvent>, InvalidCursor>
  }
>()("dexmon/gateway/LiveFeed") {
  static readonly layer = Layer.effect(
    LiveFeed,
    Effect.gen(function* () {
      const eventLog = yield* EventLog
      const { names } = yield* Topics
      const config = yield* LiveFeedConfig
      const hub = yield* PubSub.unbounded<FeedItem>()
      // The replay buffer, oldest first from `head` (trimmed by moving `head`, compacted now and then).
      let buffer: Array<FeedItem> = []
      let head = 0
      const positions: { e: Record<string, number>; a: Record<string, number> } = { e: {}, a: {} }

      const publish = (topic: "e" | "a", record: ConsumerRecord, item: FeedItem | undefined) =>
        Effect.gen(function* () {
          positions[topic][record.partition] = record.offset + 1
          if (item === undefined) return
          buffer.push(item)
          const horizon = (yield* Clock.currentTimeMillis) - config.replay
          // Bounded by count, and by age as items arrive: the oldest go first.
          while (buffer.length - head > config.buffer || (head < buffer.length && buffer[head]!.at < horizon)) head++
          if (head > 1_024 && head * 2 > buffer.length) {
            buffer = buffer.slice(head)
            head = 0
          }
          yield* PubSub.publish(hub, item)
        })

      const readingOf = (record: ConsumerRecord) =>
        decodeEventsTopicBytes(record.value).pipe(
          Effect.map((message): FeedItem | undefined =>
            message instanceof AlertActionEvent
              ? undefined
              : {
                  topic: "e",
                  partition: record.partition,
                  offset: record.offset,
                  at: record.timestamp,
                  userId: message.user_id,
                  event: { event: "reading", data: message }
                }
          ),
          Effect.orElseSucceed(() => undefined)
        )

      const notificationOf = (record: ConsumerRecord) =>
        // A dead letter replayed for one endpoint is a delivery again, not news for the app.
        record.headers["dexmon-webhook-id"] !== undefined
          ? Effect.succeed(undefined)
          : decodeAlertNotification(utf8.decode(record.value)).pipe(
              Effect.map(
                (notification): FeedItem => ({
                  topic: "a",
                  partition: record.partition,
                  offset: record.offset,
                  at: record.timestamp,
                  userId: notification.user_id,
                  event: { event: "alert", data: notification }
                })
              ),
              Effect.orElseSucceed(() => undefined)
            )

      const follow = (topicName: string, topic: "e" | "a", decode: typeof readingOf) =>
        Effect.gen(function* () {
          const since = (yield* Clock.currentTimeMillis) - config.replay
          const from = yield* eventLog.offsetsForTime(topicName, since)
          for (const [partition, offset] of from) positions[topic][partition] = offset
          yield* eventLog.follow(topicName, from).pipe(
            Stream.mapEffect((record) => Effect.flatMap(decode(record), (item) => publish(topic, record, item))),
            Stream.runDrain
          )
        }).pipe(
          Effect.tapError((error) => Effect.logWarning(`live feed on ${topicName} failed; following again`, error)),
          Effect.retry({
            schedule: Schedule.min([Schedule.exponential("1 second"), Schedule.spaced("30 seconds")])
          })
        )

      yield* Effect.forkScoped(follow(names.events, "e", readingOf))
      yield* Effect.forkScoped(follow(names.alerts, "a", notificationOf))

      const open = Effect.fn("LiveFeed.open")(function* (userId: UserId, lastEventId: string | undefined) {
        const start =
          lastEventId === undefined
            ? Option.some({ e: { ...positions.e }, a: { ...positions.a } })
            : decodeLiveCursor(lastEventId)
        if (Option.isNone(start)) {
          return yield* new InvalidCursor({ message: "Last-Event-ID is not an id this stream sent" })
        }
        return stream(userId, start.value)
      })

      const stream = (userId: UserId, start: Positions): Stream.Stream<LiveEvent> =>
        Stream.unwrap(
          Effect.gen(function* () {
            // Subscribed before the buffer is read, so nothing published in between is lost; the positions
            // then drop what the buffer already gave.
            const subscription = yield* PubSub.subscribe(hub)
            const at = { e: { ...start.e }, a: { ...start.a } }
            const fresh = (item: FeedItem) => {
              const next = at[item.topic][item.partition] ?? 0
              if (item.offset < next) return false
              at[item.topic][item.partition] = item.offset + 1
              return true
            }
            const toEvent = (item: FeedItem): LiveEvent => ({ ...item.event, id: encodeLiveCursor(at) })
            // One item at a time: each event's id is the cursor just after it.
            const replayed: Array<LiveEvent> = []
            for (let i = head; i < buffer.length; i++) {
              const item = buffer[i]!
              if (item.userId === userId && fresh(item)) replayed.push(toEvent(item))
            }
            const live = Stream.fromSubscription(subscription).pipe(
              Stream.filter((item) => item.userId === userId && fresh(item)),
              Stream.map(toEvent)
            )
            const heartbeats = Stream.tick(`${config.heartbeat} millis`).pipe(
              Stream.mapEffect(() =>
                Effect.map(Clock.currentTimeMillis, (now): LiveEvent => ({ event: "heartbeat", data: { at: now } }))
              )
            )
            return Stream.fromIterable(replayed).pipe(Stream.concat(Stream.merge(live, heartbeats)))
          })
        )

      return LiveFeed.of({ open })
    })
  )
}
