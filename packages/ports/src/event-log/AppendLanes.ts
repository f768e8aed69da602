import { Deferred, Duration, Effect, Queue } from "effect"
import { type AppendOutcome, EventLogError, type ProducerRecord, type RecordPosition } from "./EventLog.ts"

/** Sends one produce request of one partition's records, in order; answers the offset the first one got. */
export type SendPartition = (
  topic: string,
  partition: number,
  records: ReadonlyArray<ProducerRecord>
) => Effect.Effect<number, EventLogError>

export interface AppendLaneSettings {
  /**
   * Most records waiting (queued, not yet sent) per partition. An append that would go beyond it is
   * refused at once, unless its partition has nothing waiting (an append larger than the bound still
   * goes through alone).
   */
  readonly maxQueuedRecords: number
  /** How long an append waits to be acknowledged; then what is still queued of it is withdrawn. */
  readonly appendTimeout: Duration.Input
  /** The largest record batch a topic's broker accepts (the topic's `max.message.bytes`). */
  readonly maxBatchBytes: (topic: string) => number
  /**
   * The most bytes one produce request carries when it holds more than one record (Kafka's
   * `batch.size`); never above the topic's `max.message.bytes`. A single record larger than this still goes,
   * alone. Absent: the topic's `max.message.bytes`.
   */
  readonly maxRequestBytes?: number | undefined
  /**
   * How long a partition that was idle waits after its first append before it sends, so appends
   * arriving meanwhile share the request (Kafka's `linger.ms`). A busy partition does not wait: what
   * arrives while a request is in flight goes in the next one. Absent or zero: sent at once.
   */
  readonly linger?: Duration.Input | undefined
  /** Waits until a request may be sent (the producer is connected and not being recreated). */
  readonly ready?: Effect.Effect<void> | undefined
}

/** Kafka's record batch header (magic v2): base offset, length, epoch, CRC, attributes, deltas, producer ids, count. */
export const BATCH_OVERHEAD_BYTES = 61

/**
 * The most bytes `record` takes in a v2 record batch, uncompressed: every varint at its widest, so a
 * request sized by this is never larger than the broker measures it.
 */
export const recordBatchBytes = (record: ProducerRecord): number => {
  // length, attributes, timestamp delta (varlong), offset delta, key length, value length, header count.
  let bytes = 5 + 1 + 10 + 5 + 5 + Buffer.byteLength(record.key, "utf8") + 5 + record.value.byteLength + 5
  for (const [name, value] of Object.entries(record.headers)) {
    bytes += 5 + Buffer.byteLength(name, "utf8") + 5 + Buffer.byteLength(value, "utf8")
  }
  return bytes
}

/** One append in progress, across the partitions its records go to. */
interface Pending {
  readonly done: Deferred.Deferred<ReadonlyArray<RecordPosition>, EventLogError>
  readonly positions: Array<RecordPosition | undefined>
  /** Each record's `recordBatchBytes`, by its place in the append: measured once, when it is appended. */
  readonly sizes: ReadonlyArray<number>
  readonly slices: Array<Slice>
  /** Records not yet acknowledged. */
  unanswered: number
  /** Whether any of its records has been handed to a produce request. */
  sent: boolean
  settled: boolean
}

/** The records of one append bound for one partition (`indices`: their places in the append). */
interface Slice {
  readonly pending: Pending
  readonly lane: Lane
  indices: ReadonlyArray<number>
  records: ReadonlyArray<ProducerRecord>
  /** Taken off the queue: withdrawn, or (all of what is left of it) handed to a produce request. */
  withdrawn: boolean
}

interface Lane {
  readonly topic: string
  readonly partition: number
  readonly queue: Array<Slice>
  /** Records in the queue's slices that are not withdrawn. */
  queued: number
  readonly wake: Queue.Queue<void>
}

const appendError = (message: string, appendOutcome: AppendOutcome, cause?: unknown) =>
  new EventLogError({ operation: "append", message, transient: true, appendOutcome, cause })

/**
 * Appends for the idempotent Kafka producer, one lane per partition.
 *
 * Each partition has its own queue and its own sender fiber with at most one produce request in flight,
 * which keeps that partition's sequence numbers in order (two concurrent requests to one partition
 * would fail with OUT_OF_ORDER_SEQUENCE_NUMBER) while a slow or leaderless partition holds up only the
 * appends that have records for it. A sender takes everything queued for its partition, whole appends
 * in order, up to the topic's `max.message.bytes`: an append larger than that is split across
 * successive requests. Each queue is bounded (`maxQueuedRecords`): a full one refuses new appends at
 * once rather than letting them wait for a timeout, and an append that times out takes whatever of it
 * is still queued back, so it either was never sent (nothing appended) or says plainly that its
 * outcome is unknown.
 */
export const makeAppendLanes = Effect.fnUntraced(function* (send: SendPartition, settings: AppendLaneSettings) {
  const scope = yield* Effect.scope
  const lanes = new Map<string, Lane>()

  /**
   * Takes what is left of a failed or timed-out append off its lanes' queues, out of the arrays too: a
   * lane whose sender is stuck (a leaderless partition, a producer that cannot reconnect) does not reach
   * them for as long as that lasts, and every timed-out append would stay in memory with its records.
   */
  const withdraw = (pending: Pending) => {
    for (const slice of pending.slices) {
      if (slice.withdrawn) continue
      slice.withdrawn = true
      slice.lane.queued -= slice.records.length
      const index = slice.lane.queue.indexOf(slice)
      if (index >= 0) slice.lane.queue.splice(index, 1)
    }
  }

  const settleFailure = (pending: Pending, error: EventLogError) =>
    Effect.suspend(() => {
      if (pending.settled) return Effect.void
      pending.settled = true
      withdraw(pending)
      return Deferred.fail(pending.done, error)
    })

  /** The next request's slices: whole ones in order while they fit, and the head of one that does not. */
  const takeRequest = (lane: Lane): Array<Slice> => {
    const topicBudget = settings.maxBatchBytes(lane.topic) - BATCH_OVERHEAD_BYTES
    const budget = Math.min(topicBudget, (settings.maxRequestBytes ?? Number.POSITIVE_INFINITY) - BATCH_OVERHEAD_BYTES)
    const taken: Array<Slice> = []
    let bytes = 0
    while (lane.queue.length > 0) {
      const slice = lane.queue[0]!
      if (slice.withdrawn) {
        lane.queue.shift()
        continue
      }
      let fits = 0
      while (fits < slice.records.length) {
        const size = slice.pending.sizes[slice.indices[fits]!]!
        // The first record of a request goes whatever the request budget (append checked it against the topic's).
        if (bytes + size > (bytes === 0 ? topicBudget : budget)) break
        bytes += size
        fits++
      }
      if (fits === slice.records.length) {
        lane.queue.shift()
        lane.queued -= fits
        slice.pending.sent = true
        taken.push({ ...slice })
        slice.withdrawn = true
        continue
      }
      if (fits > 0) {
        // The head of the slice goes now; the rest stays first in the queue, for the next request.
        taken.push({ ...slice, indices: slice.indices.slice(0, fits), records: slice.records.slice(0, fits) })
        slice.indices = slice.indices.slice(fits)
        slice.records = slice.records.slice(fits)
        lane.queued -= fits
        slice.pending.sent = true
      }
      break
    }
    return taken
  }

  const sendRequest = (lane: Lane, slices: ReadonlyArray<Slice>) =>
    Effect.gen(function* () {
      const records = slices.flatMap((slice) => slice.records)
      const result = yield* send(lane.topic, lane.partition, records).pipe(Effect.result)
      if (result._tag === "Failure") {
        const error = appendError(
          `Kafka did not acknowledge ${lane.topic}/${lane.partition}: ${result.failure.message}`,
          "unknown",
          result.failure
        )
        yield* Effect.forEach(slices, (slice) => settleFailure(slice.pending, error), { discard: true })
        return
      }
      // Within one request, a partition's records are appended in request order from its base offset.
      let offset = result.success
      for (const slice of slices) {
        const { pending } = slice
        for (const index of slice.indices) {
          pending.positions[index] = { topic: lane.topic, partition: lane.partition, offset: offset++ }
        }
        pending.unanswered -= slice.indices.length
        if (pending.unanswered === 0 && !pending.settled) {
          pending.settled = true
          yield* Deferred.succeed(pending.done, pending.positions as ReadonlyArray<RecordPosition>)
        }
      }
    })

  /** A partition's sender: one request at a time, as long as anything is queued. */
  const linger = settings.linger === undefined ? Duration.zero : Duration.fromInputUnsafe(settings.linger)
  const runLane = (lane: Lane) =>
    Effect.gen(function* () {
      yield* Queue.take(lane.wake)
      if (Duration.isGreaterThan(linger, Duration.zero)) yield* Effect.sleep(linger)
      yield* Queue.clear(lane.wake)
      while (lane.queued > 0) {
        if (settings.ready !== undefined) yield* settings.ready
        const slices = takeRequest(lane)
        if (slices.length === 0) break
        yield* sendRequest(lane, slices)
      }
    }).pipe(Effect.forever)

  const laneFor = (topic: string, partition: number) =>
    Effect.gen(function* () {
      const key = `${topic}/${partition}`
      const existing = lanes.get(key)
      if (existing !== undefined) return existing
      const lane: Lane = { topic, partition, queue: [], queued: 0, wake: yield* Queue.unbounded<void>() }
      lanes.set(key, lane)
      yield* Effect.forkIn(runLane(lane), scope)
      return lane
    })

  /** Appends `records` (to the partitions `partitions` names, one each) and answers their positions in input order. */
  const append = (topic: string, records: ReadonlyArray<ProducerRecord>, partitions: ReadonlyArray<number>) =>
    Effect.gen(function* () {
      const byPartition = new Map<number, Array<number>>()
      const sizes = records.map(recordBatchBytes)
      records.forEach((_, index) => {
        if (sizes[index]! + BATCH_OVERHEAD_BYTES > settings.maxBatchBytes(topic)) return
        const indices = byPartition.get(partitions[index]!) ?? []
        indices.push(index)
        byPartition.set(partitions[index]!, indices)
      })
      const tooLarge = records.length - [...byPartition.values()].reduce((sum, indices) => sum + indices.length, 0)
      if (tooLarge > 0) {
        return yield* new EventLogError({
          operation: "append",
          message: `${tooLarge} record(s) larger than ${topic}'s max.message.bytes (${settings.maxBatchBytes(topic)})`,
          transient: false,
          appendOutcome: "refused"
        })
      }
      const laneList = yield* Effect.forEach([...byPartition], ([partition, indices]) =>
        Effect.map(laneFor(topic, partition), (lane) => [lane, indices] as const)
      )
      // All or nothing: an append refused by one full partition queues nothing on the others.
      const full = laneList.filter(
        ([lane, indices]) => lane.queued > 0 && lane.queued + indices.length > settings.maxQueuedRecords
      )
      if (full.length > 0) {
        return yield* appendError(
          `the queue of appends to ${full.map(([lane]) => `${topic}/${lane.partition}`).join(", ")} is full (${settings.maxQueuedRecords} records)`,
          "refused"
        )
      }
      const pending: Pending = {
        done: yield* Deferred.make<ReadonlyArray<RecordPosition>, EventLogError>(),
        positions: new Array(records.length),
        sizes,
        slices: [],
        unanswered: records.length,
        sent: false,
        settled: false
      }
      for (const [lane, indices] of laneList) {
        const slice: Slice = { pending, lane, indices, records: indices.map((i) => records[i]!), withdrawn: false }
        pending.slices.push(slice)
        lane.queue.push(slice)
        lane.queued += indices.length
        Queue.offerUnsafe(lane.wake, undefined)
      }
      return yield* Deferred.await(pending.done).pipe(
        Effect.timeoutOrElse({
          duration: settings.appendTimeout,
          orElse: () =>
            Effect.suspend(() => {
              if (pending.settled) return Deferred.await(pending.done)
              const error = pending.sent
                ? appendError(
                    "Kafka did not acknowledge the append in time; it may or may not be in the log",
                    "unknown"
                  )
                : appendError("Kafka did not take the append in time; it was withdrawn unsent", "withdrawn")
              return settleFailure(pending, error).pipe(Effect.andThen(Effect.fail(error)))
            })
        }),
        // A caller that gives up (a client gone) takes back what was not sent yet.
        Effect.onInterrupt(() =>
          Effect.sync(() => {
            pending.settled = true
            withdraw(pending)
          })
        )
      )
    })

  /** Records waiting to be sent, per `topic/partition` (for probes and tests). */
  const queued = Effect.sync(
    () => new Map([...lanes].map(([key, lane]) => [key, lane.queued])) as ReadonlyMap<string, number>
  )

  /** Slices held in the lanes' queues, per `topic/partition`: what stays in memory (for tests). */
  const held = Effect.sync(
    () => new Map([...lanes].map(([key, lane]) => [key, lane.queue.length])) as ReadonlyMap<string, number>
  )

  return { append, queued, held }
})
