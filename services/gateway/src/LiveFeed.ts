import { durationConfig } from "@dexmon/alerting"
import type { LiveEvent, ServiceUnavailable } from "@dexmon/api"
import {
  type AlertNotification,
  decodeAlertNotificationBytes,
  decodeEventsTopicBytes,
  GlucoseEvent,
  InvalidCursor,
  type UserId
} from "@dexmon/domain"
import { type ConsumerRecord, EventLog, Topics } from "@dexmon/ports"
import { type Cause, Clock, Config, Context, Effect, Layer, Option, Queue, Schedule, Schema, Stream } from "effect"
import { unavailable } from "./Unavailable.ts"

/** Where the live feed stands: the next offset of every partition of the two topics it follows. */
interface Positions {
  readonly e: Record<string, number>
  readonly a: Record<string, number>
}

/** One item of the feed: whose it is, where it sits, and the event the app gets. */
interface FeedItem {
  readonly topic: Topic
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
  /**
   * Items a stream may have waiting for its client; a client that falls further behind is cut off (it
   * resumes). Keep it well above the follower's batch (500): a batch is offered to the queues at once.
   */
  backlog: Config.Int("DEXMON_STREAM_BACKLOG").pipe(Config.withDefault(10_000)),
  heartbeat: durationConfig("DEXMON_STREAM_HEARTBEAT", 15_000)
})

type Topic = "e" | "a"

/** The next offset of a partition a cursor names; an unnamed partition (one added since) from its start. */
const nextOf = (positions: Positions, topic: Topic, partition: number) => positions[topic][partition] ?? 0

/**
 * The gateway's live feed: one follower per topic (`glucose.events` and
 * `glucose.alerts`) for the whole process, whatever the number of open
 * streams, from the last `DEXMON_STREAM_REPLAY` of each, into a bounded
 * in-memory replay buffer, and routed by user to the open streams. Every
 * replica follows every partition (no consumer group shares them), so a
 * stream opened on any replica sees every event of its user.
 *
 * A stream starts at the log's end offsets, or at the cursor of the
 * `Last-Event-ID` it was given (clamped to the end): the buffered items after
 * the cursor first, then the live ones, each partition's offsets rising, so
 * nothing is repeated and order per sensor (one partition) is kept. Every
 * event carries the cursor just after it, heartbeats too (the first comes at
 * once), so a client always has a point to resume from. A client that falls
 * `DEXMON_STREAM_BACKLOG` items behind is cut off and resumes with its last id.
 * A cursor older than the buffer resumes at the buffer's start.
 */
export class LiveFeed extends Context.Service<
  LiveFeed,
  {
    /**
     * The caller's stream, from the log's end or from the cursor of the
     * `Last-Event-ID` given (refused when it is not a cursor); alert
     * notifications only for a caller who may read alerts.
     */
    readonly open: (
      userId: UserId,
      lastEventId: string | undefined,
      options: { readonly alerts: boolean }
    ) => Effect.Effect<Stream.Stream<LiveEvent>, InvalidCursor | ServiceUnavailable>
  }
>()("dexmon/gateway/LiveFeed") {
  static readonly layer = Layer.effect(
    LiveFeed,
    Effect.gen(function* () {
      const eventLog = yield* EventLog
      const { names } = yield* Topics
      const config = yield* LiveFeedConfig
      // The replay buffer, oldest first from `head` (trimmed by moving `head`, compacted now and then).
      let buffer: Array<FeedItem> = []
      let head = 0
      // The open streams, by user: each gets only its user's items, into a queue of its own.
      const subscribers = new Map<UserId, Set<Queue.Queue<FeedItem, Cause.Done>>>()

      const publish = Effect.fnUntraced(function* (item: FeedItem) {
        buffer.push(item)
        const horizon = (yield* Clock.currentTimeMillis) - config.replay
        // Bounded by count, and by age as items arrive: the oldest go first.
        while (buffer.length - head > config.buffer || (head < buffer.length && buffer[head]!.at < horizon)) head++
        if (head > 1_024 && head * 2 > buffer.length) {
          buffer = buffer.slice(head)
          head = 0
        }
        for (const queue of subscribers.get(item.userId) ?? []) {
          // Never waits for a slow client: one too far behind is cut off, and resumes from the buffer.
          if (!Queue.offerUnsafe(queue, item)) Queue.endUnsafe(queue)
        }
      })

      const readingOf = (record: ConsumerRecord) =>
        decodeEventsTopicBytes(record.value).pipe(
          Effect.map((message): FeedItem | undefined =>
            message instanceof GlucoseEvent
              ? {
                  topic: "e",
                  partition: record.partition,
                  offset: record.offset,
                  at: record.timestamp,
                  userId: message.user_id,
                  event: { event: "reading", data: message }
                }
              : undefined
          ),
          Effect.orElseSucceed(() => undefined)
        )

      const notificationOf = (record: ConsumerRecord) =>
        // A dead letter replayed for one endpoint is a delivery again, not news for the app.
        record.headers["dexmon-webhook-id"] !== undefined
          ? Effect.succeed(undefined)
          : decodeAlertNotificationBytes(record.value).pipe(
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

      /**
       * Follows one topic for good: first from the start of the replay span,
       * then, after any failure, from where it stood (never backwards: the
       * buffer and the open streams saw what came before).
       */
      const follow = (topicName: string, decode: typeof readingOf) =>
        Effect.gen(function* () {
          let from: ReadonlyMap<number, number> | undefined
          const once = Effect.gen(function* () {
            if (from === undefined) {
              from = yield* eventLog.offsetsForTime(topicName, (yield* Clock.currentTimeMillis) - config.replay)
            }
            const next = new Map(from)
            yield* eventLog.follow(topicName, from).pipe(
              Stream.mapEffect((record) =>
                Effect.flatMap(decode(record), (item) =>
                  Effect.gen(function* () {
                    next.set(record.partition, record.offset + 1)
                    from = next
                    if (item !== undefined) yield* publish(item)
                  })
                )
              ),
              Stream.runDrain
            )
          })
          yield* once.pipe(
            Effect.catchCause((cause) =>
              Effect.logWarning(`live feed on ${topicName} stopped; following again`, cause)
            ),
            Effect.repeat(Schedule.min([Schedule.exponential("1 second"), Schedule.spaced("30 seconds")]))
          )
        })

      yield* Effect.forkScoped(follow(names.events, readingOf))
      yield* Effect.forkScoped(follow(names.alerts, notificationOf))

      /** The log's end offsets of both topics: where a stream without a cursor starts, and the most a cursor may say. */
      const ends = Effect.all([eventLog.endOffsets(names.events), eventLog.endOffsets(names.alerts)]).pipe(
        Effect.catchTag("EventLogError", unavailable("the event log"))
      )

      const open = Effect.fn("LiveFeed.open")(function* (
        userId: UserId,
        lastEventId: string | undefined,
        options: { readonly alerts: boolean }
      ) {
        const given = lastEventId === undefined ? undefined : decodeLiveCursor(lastEventId)
        if (given !== undefined && Option.isNone(given)) {
          return yield* new InvalidCursor({ message: "Last-Event-ID is not an id this stream sent" })
        }
        const [eventsEnd, alertsEnd] = yield* ends
        // Every partition named; a cursor past the end (a log recreated since) is brought back to it.
        const start = (topic: Topic, end: ReadonlyMap<number, number>) =>
          Object.fromEntries(
            [...end].map(([partition, last]) => [
              String(partition),
              given === undefined ? last : Math.min(nextOf(given.value, topic, partition), last)
            ])
          )
        return stream(userId, { e: start("e", eventsEnd), a: start("a", alertsEnd) }, options.alerts)
      })

      const stream = (userId: UserId, start: Positions, alerts: boolean): Stream.Stream<LiveEvent> =>
        Stream.unwrap(
          Effect.gen(function* () {
            // Registered before the buffer is read, so nothing published in between is lost; the positions
            // then drop what the buffer already gave.
            const queue = yield* Queue.bounded<FeedItem, Cause.Done>(config.backlog)
            const mine = subscribers.get(userId) ?? new Set()
            mine.add(queue)
            subscribers.set(userId, mine)
            yield* Effect.addFinalizer(() =>
              Effect.sync(() => {
                mine.delete(queue)
                if (mine.size === 0) subscribers.delete(userId)
              })
            )
            const at = { e: { ...start.e }, a: { ...start.a } }
            const cursor = () => encodeLiveCursor(at)
            /** The item as its event, with the cursor just after it; none when already sent or not for this caller. */
            const eventOf = (item: FeedItem): Option.Option<LiveEvent> => {
              if (item.offset < nextOf(at, item.topic, item.partition)) return Option.none()
              at[item.topic][item.partition] = item.offset + 1
              if (item.event.event === "alert" && !alerts) return Option.none()
              return Option.some({ ...item.event, id: cursor() })
            }
            const heartbeat = Effect.map(
              Clock.currentTimeMillis,
              (now): LiveEvent => ({ event: "heartbeat", id: cursor(), data: { at: now } })
            )
            const replayed: Array<LiveEvent> = []
            for (let i = head; i < buffer.length; i++) {
              const item = buffer[i]!
              if (item.userId !== userId) continue
              const event = eventOf(item)
              if (Option.isSome(event)) replayed.push(event.value)
            }
            // Items and ticks merged first, then turned into events in one step: a heartbeat's cursor never
            // runs ahead of an item still waiting.
            const items = Stream.fromQueue(queue).pipe(Stream.map((item) => Option.some(item)))
            const ticks = Stream.tick(`${config.heartbeat} millis`).pipe(Stream.map(() => Option.none<FeedItem>()))
            const live = Stream.merge(items, ticks, { haltStrategy: "left" }).pipe(
              Stream.mapEffect((next) =>
                Option.isSome(next) ? Effect.succeed(eventOf(next.value)) : Effect.map(heartbeat, Option.some)
              ),
              Stream.filter(Option.isSome),
              Stream.map((event) => event.value)
            )
            // A heartbeat right away: the client has a cursor to resume from before its first event.
            return Stream.fromIterable(replayed).pipe(Stream.concat(Stream.fromEffect(heartbeat)), Stream.concat(live))
          })
        )

      return LiveFeed.of({ open })
    })
  )
}
