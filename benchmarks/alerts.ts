// Alert engine benchmark on a real Kafka and Cassandra: the notifier (its own
// process, as deployed) consuming a pre-filled `glucose.events`, next to a raw
// baseline in the same run, and the pure engine in-process next to a raw loop.
//
// - notifier: `node services/notifier/src/main.ts` under DEXMON_PROFILE=production,
//   a fresh keyspace and topic prefix, AlertDay's rules (rate alerts on); per
//   partition batch it loads the sensors' states, decides, upserts episodes,
//   writes the states with lightweight transactions and commits.
// - raw baseline: a plain kafkajs consumer group on the same topic with the same
//   consumer settings and batch size, doing what the notifier did before the
//   engine: one prepared INSERT per low or high reading (concurrency 32,
//   LOCAL_QUORUM), then the commit. No state is read or written.
// - engine: `decide` over the same readings in this process, no I/O, next to a
//   loop that only compares each value with the thresholds.
//
// Both consumers run as child processes: readings/s from their first commit to
// all committed (the group's committed offsets, polled every 100 ms), their CPU
// time from /proc/<pid>/stat, their peak RSS sampled from /proc every 50 ms, and
// the Cassandra JVM's CPU over the same span when the harness runs it.
//
//   pnpm bench:alerts    (starts Kafka and Cassandra with the harness unless KAFKA_BROKERS /
//                         CASSANDRA_CONTACT_POINTS are set; BENCH_ALERT_READINGS, BENCH_ALERT_SENSORS,
//                         BENCH_NOTIFIER_BATCH_SIZE change the run)
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import os from "node:os"
import { fileURLToPath } from "node:url"
import { decide, initialSensorState, type ReadingInput, type SensorState } from "@dexmon/alerting"
import { type AlertType, deriveAlertId } from "@dexmon/domain"
import { EventLog, freePort, KafkaEventLog, Topics } from "@dexmon/ports"
import { NodeRuntime } from "@effect/platform-node"
import cassandra from "cassandra-driver"
import { Clock, ConfigProvider, Console, Context, Effect, Layer, Schedule } from "effect"
import { type EachBatchPayload, Kafka, logLevel } from "kafkajs"
import * as Harness from "../infra/Harness.ts"
import { readState } from "../infra/State.ts"
import {
  type DayRecord,
  dayRules,
  dayRulesEnv,
  scriptDay,
  toProducerRecord,
  toReadingInput
} from "../services/standalone/test/support/AlertDay.ts"

Harness.hideKafkajsTimerWarning()

const READINGS = Number(process.env.BENCH_ALERT_READINGS ?? 100_000)
const SENSORS = Number(process.env.BENCH_ALERT_SENSORS ?? 1_000)
/** The notifier's default (DEXMON_NOTIFIER_BATCH_SIZE); the baseline slices its fetches the same way. */
const BATCH_SIZE = Number(process.env.BENCH_NOTIFIER_BATCH_SIZE ?? 500)
const SENSORS_PER_USER = 4
const PARTITIONS = 8
const WRITE_CONCURRENCY = 32
const DAY = 24 * 60 * 60_000
/** The longest a consumer gets to commit every record before the run fails. */
const CONSUME_TIMEOUT_MS = 30 * 60_000

/**
 * The first `readings` records, in log order, of AlertDay's scripted days for
 * `sensors` sensors, the last day ending at `end`: a reading every five
 * minutes, with dips, urgent lows, highs, fast falls, gaps, corrections,
 * finger-sticks and a late backlog spread over the sensors. Fewer readings than
 * a day's are the day's first hours for every sensor.
 */
const scriptReadings = (run: string, end: number, readings: number, sensors: number) => {
  const days: Array<ReadonlyArray<DayRecord>> = []
  let total = 0
  while (total < readings) {
    const day = scriptDay({ run, end: end - days.length * DAY, sensorCount: sensors, sensorsPerUser: SENSORS_PER_USER })
    days.unshift(day)
    total += day.length
  }
  return days.flat().slice(0, readings)
}

/** What the notifier before the engine raised for a value: LOW or HIGH, at the same thresholds. */
const classifyOld = (value: number): AlertType | undefined =>
  value < dayRules.low.below ? "LOW" : value > dayRules.high.above ? "HIGH" : undefined

// ---------------------------------------------------------------------------------------------
// The pure engine, in this process

interface Passes {
  readonly result: number
  readonly passes: number
  readonly seconds: number
  readonly cpuSecondsPerPass: number
}

/** Runs `pass` once to warm up, then again until `minSeconds` have passed; time and CPU per pass. */
const timedPasses = (pass: () => number, minSeconds: number) =>
  Effect.sync((): Passes => {
    pass()
    const cpu = process.cpuUsage()
    const started = performance.now()
    let passes = 0
    let result = 0
    do {
      result = pass()
      passes += 1
    } while (performance.now() - started < minSeconds * 1000)
    const seconds = (performance.now() - started) / 1000
    const used = process.cpuUsage(cpu)
    return { result, passes, seconds: seconds / passes, cpuSecondsPerPass: (used.user + used.system) / 1e6 / passes }
  })

/** Every reading through `decide`, each sensor's state kept in a map as the notifier keeps it per batch; the episodes touched. */
const decideAll = (records: ReadonlyArray<DayRecord>, inputs: ReadonlyArray<ReadingInput>) => () => {
  const states = new Map<string, SensorState>()
  const episodes = new Set<string>()
  for (let i = 0; i < records.length; i++) {
    const record = records[i]!
    const decision = decide(
      dayRules,
      states.get(record.sensor) ?? initialSensorState(record.sensor, record.user),
      inputs[i]!
    )
    states.set(record.sensor, decision.state)
    for (const change of decision.changes) episodes.add(change.alert.alert_id)
  }
  return episodes.size
}

/** The least an alerting loop does: put each value in its band (urgent low, low, high, in range); how many were out of range. */
const classifyAll = (values: Float64Array) => () => {
  const bands = [0, 0, 0, 0]
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!
    bands[v <= dayRules.urgentLowAt ? 0 : v < dayRules.low.below ? 1 : v > dayRules.high.above ? 2 : 3]! += 1
  }
  return bands[0]! + bands[1]! + bands[2]!
}

// ---------------------------------------------------------------------------------------------
// The raw baseline, as a child process

/**
 * Run as `node benchmarks/alerts.ts --raw-baseline <brokers> <contact points> <dc> <keyspace> <topic> <group> <batch size>`:
 * joins the group and, for each slice of a fetched partition batch, inserts one
 * row per low or high reading into a table of the old `glucose_alerts` shape,
 * then commits the slice. Runs until it is stopped.
 */
const rawBaseline = (args: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const [brokers = "", contactPoints = "", dataCenter = "", keyspace = "", topic = "", groupId = "", batch = ""] =
      args
    const batchSize = Number(batch)
    const client = new cassandra.Client({
      contactPoints: contactPoints.split(","),
      localDataCenter: dataCenter,
      queryOptions: { consistency: cassandra.types.consistencies.localQuorum, prepare: true }
    })
    yield* Effect.acquireRelease(
      Effect.promise(() => client.connect()),
      () => Effect.promise(() => client.shutdown())
    )
    yield* Effect.promise(() =>
      client.execute(
        `CREATE KEYSPACE IF NOT EXISTS ${keyspace} WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`
      )
    )
    const table = `${keyspace}.raw_alerts`
    yield* Effect.promise(() =>
      client.execute(
        `CREATE TABLE IF NOT EXISTS ${table} (
          user_id text, timestamp timestamp, alert_id uuid, sensor_id text, glucose_value double,
          alert_type text, status text,
          PRIMARY KEY ((user_id), timestamp, alert_id)
        ) WITH CLUSTERING ORDER BY (timestamp DESC, alert_id DESC)`
      )
    )
    const insert = `INSERT INTO ${table} (user_id, timestamp, alert_id, sensor_id, glucose_value, alert_type, status)
      VALUES (?, ?, ?, ?, ?, ?, ?)`

    const kafka = new Kafka({ clientId: "bench-raw-alerts", brokers: brokers.split(","), logLevel: logLevel.NOTHING })
    // The settings of KafkaEventLog's consumer, so the two read Kafka alike.
    const consumer = kafka.consumer({
      groupId,
      allowAutoTopicCreation: false,
      maxBytesPerPartition: 1_048_576,
      sessionTimeout: 30_000,
      heartbeatInterval: 3_000
    })

    const handleSlice = (partition: number, messages: EachBatchPayload["batch"]["messages"]) =>
      Effect.gen(function* () {
        const rows = messages.flatMap((message) => {
          const event = JSON.parse(message.value?.toString("utf8") ?? "null")
          const type = classifyOld(event.glucose_value)
          if (type === undefined) return []
          const timestamp = Date.parse(event.timestamp)
          return [
            [
              event.user_id,
              new Date(timestamp),
              cassandra.types.Uuid.fromString(deriveAlertId(event.sensor_id, timestamp, type)),
              event.sensor_id,
              event.glucose_value,
              type,
              "SENT"
            ]
          ]
        })
        yield* Effect.forEach(
          rows,
          (params) => Effect.promise(() => client.execute(insert, params, { isIdempotent: true })),
          { concurrency: WRITE_CONCURRENCY, discard: true }
        )
        const next = Number(messages[messages.length - 1]!.offset) + 1
        yield* Effect.promise(() => consumer.commitOffsets([{ topic, partition, offset: String(next) }]))
      })

    const eachBatch = ({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload) =>
      Effect.runPromise(
        Effect.gen(function* () {
          for (let start = 0; start < batch.messages.length && isRunning() && !isStale(); start += batchSize) {
            const slice = batch.messages.slice(start, start + batchSize)
            yield* handleSlice(batch.partition, slice)
            resolveOffset(slice[slice.length - 1]!.offset)
            yield* Effect.promise(() => heartbeat())
          }
        })
      )

    yield* Effect.acquireRelease(
      Effect.promise(() => consumer.connect()),
      () => Effect.promise(() => consumer.disconnect())
    )
    yield* Effect.promise(() => consumer.subscribe({ topic, fromBeginning: true }))
    yield* Effect.promise(() =>
      consumer.run({ autoCommit: false, eachBatchAutoResolve: false, partitionsConsumedConcurrently: 1, eachBatch })
    )
    return yield* Effect.never
  })

// ---------------------------------------------------------------------------------------------
// Measuring a consumer process

const clockTicks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100

/** User plus system CPU seconds of a process so far (fields 14 and 15 of /proc/<pid>/stat). */
const cpuSecondsOf = (pid: number | undefined) => {
  if (pid === undefined) return Number.NaN
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    // The command name may hold spaces: count the fields after its closing parenthesis (the 3rd field on).
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return (Number(fields[11]) + Number(fields[12])) / clockTicks
  } catch {
    return Number.NaN
  }
}

/** The largest of VmRSS and VmHWM (the kernel's own peak, in case a peak fell between two samples), in kB. */
const rssKbOf = (pid: number) => {
  try {
    let kb = 0
    for (const [, value] of readFileSync(`/proc/${pid}/status`, "utf8").matchAll(/^Vm(?:RSS|HWM):\s+(\d+) kB/gm)) {
      kb = Math.max(kb, Number(value))
    }
    return kb
  } catch {
    // The process exited between two samples: its peak was read by the last one.
    return 0
  }
}

interface Mark {
  readonly ms: number
  readonly committed: number
  readonly cpu: number
  readonly cassandraCpu: number
}

interface ConsumerRun {
  readonly started: Mark
  readonly first: Mark
  readonly done: Mark
  readonly peakRssMb: number
}

const secondsOf = (run: ConsumerRun) => (run.done.ms - run.first.ms) / 1000
/** From the first commit seen to all committed; a run too short for two polls counts from its start instead. */
const readingsPerSecond = (run: ConsumerRun) =>
  run.done.ms > run.first.ms
    ? (run.done.committed - run.first.committed) / secondsOf(run)
    : run.done.committed / ((run.done.ms - run.started.ms) / 1000)

/**
 * Starts `node <args>`, waits until the group has committed `total` records,
 * and marks the start, the first commit seen and the last: time, records
 * committed, the process's CPU and the Cassandra JVM's. The process is stopped
 * (SIGTERM, then SIGKILL) when the scope closes.
 */
const measureConsumer = (options: {
  readonly args: ReadonlyArray<string>
  readonly env: Record<string, string>
  readonly log: EventLog["Service"]
  readonly topic: string
  readonly groupId: string
  readonly total: number
  readonly cassandraPid: number | undefined
}) =>
  Effect.scoped(
    Effect.gen(function* () {
      const output: Array<string> = []
      const child: ChildProcess = yield* Effect.acquireRelease(
        Effect.sync(() => {
          const proc = spawn(process.execPath, [...options.args], {
            env: options.env,
            stdio: ["ignore", "pipe", "pipe"]
          })
          proc.stdout?.on("data", (chunk) => output.push(String(chunk)))
          proc.stderr?.on("data", (chunk) => output.push(String(chunk)))
          return proc
        }),
        (proc) => {
          const exited = Effect.callback<void>((resume) => {
            if (proc.exitCode !== null || proc.signalCode !== null) return resume(Effect.void)
            proc.once("exit", () => resume(Effect.void))
          })
          return Effect.sync(() => proc.kill("SIGTERM")).pipe(
            Effect.andThen(exited),
            // One that ignores SIGTERM is killed: a benchmark must not leave a consumer behind.
            Effect.timeoutOrElse({
              duration: "15 seconds",
              orElse: () => Effect.sync(() => proc.kill("SIGKILL")).pipe(Effect.andThen(exited))
            })
          )
        }
      )
      const pid = child.pid!
      const mark = (committed: number): Mark => ({
        ms: performance.now(),
        committed,
        cpu: cpuSecondsOf(pid),
        cassandraCpu: cpuSecondsOf(options.cassandraPid)
      })
      const started = mark(0)
      let peakKb = 0
      const sampler = setInterval(() => {
        peakKb = Math.max(peakKb, rssKbOf(pid))
      }, 50)
      yield* Effect.addFinalizer(() => Effect.sync(() => clearInterval(sampler)))

      let first: Mark | undefined
      /** One look at the group's progress: the run's marks once every record is committed. */
      const observe = Effect.gen(function* () {
        if (child.exitCode !== null || child.signalCode !== null)
          return yield* Effect.die(
            new Error(`node ${options.args.join(" ")} exited early:\n${output.join("").slice(-4_000)}`)
          )
        // A fresh broker answers "coordinator loading" for a while: that is not yet, not a failure.
        const offsets = yield* options.log
          .committedOffsets(options.groupId, options.topic)
          .pipe(Effect.retry({ schedule: Schedule.spaced("200 millis"), times: 100 }))
        const committed = [...offsets.values()].reduce((sum, offset) => sum + offset, 0)
        if (committed === 0 && first === undefined) return undefined
        const now = mark(committed)
        if (first === undefined) first = now
        if (committed < options.total) return undefined
        peakKb = Math.max(peakKb, rssKbOf(pid))
        return { started, first, done: now, peakRssMb: peakKb / 1024 } satisfies ConsumerRun
      })
      const finished = yield* observe.pipe(
        Effect.repeat({ schedule: Schedule.spaced("100 millis"), until: (run) => run !== undefined }),
        Effect.timeoutOrElse({
          duration: CONSUME_TIMEOUT_MS,
          orElse: () =>
            Effect.die(new Error(`not every record was committed within ${CONSUME_TIMEOUT_MS / 60_000} min`))
        })
      )
      return finished!
    })
  )

// ---------------------------------------------------------------------------------------------
// What one statement of each kind costs on this cluster

interface StatementCost {
  readonly name: string
  readonly perSecond: number
  readonly p50: number
  readonly p99: number
  readonly cassandraCpuMs: number
  readonly notApplied: number
}

/** `count` statements, `WRITE_CONCURRENCY` in flight as the stores send them: statements/s, latency, Cassandra CPU each. */
const timeStatements = (
  name: string,
  count: number,
  statement: (i: number) => Promise<cassandra.types.ResultSet>,
  cassandraPid: number | undefined
) =>
  Effect.gen(function* () {
    const latencies: Array<number> = []
    let notApplied = 0
    const cpu = cpuSecondsOf(cassandraPid)
    const started = performance.now()
    yield* Effect.forEach(
      Array.from({ length: count }, (_, i) => i),
      (i) =>
        Effect.suspend(() => {
          const sent = performance.now()
          return Effect.promise(() => statement(i)).pipe(
            Effect.tap((result) =>
              Effect.sync(() => {
                latencies.push(performance.now() - sent)
                if (result.first()?.get("[applied]") === false) notApplied += 1
              })
            )
          )
        }),
      { concurrency: WRITE_CONCURRENCY, discard: true }
    )
    const seconds = (performance.now() - started) / 1000
    latencies.sort((a, b) => a - b)
    return {
      name,
      perSecond: count / seconds,
      p50: latencies[Math.floor(count / 2)]!,
      p99: latencies[Math.min(count - 1, Math.floor(count * 0.99))]!,
      cassandraCpuMs: ((cpuSecondsOf(cassandraPid) - cpu) * 1000) / count,
      notApplied
    } satisfies StatementCost
  })

/**
 * The statements a notifier batch is made of, on a table of the state table's
 * shape holding a state the notifier wrote: a read by key, a plain write (as
 * the state and check writes by version and the baseline's INSERT), and, for
 * comparison, the conditional writes by revision the notifier made before
 * (lightweight transactions: Paxos at LOCAL_SERIAL), for `sensors` sensors.
 */
const statementCosts = (
  session: cassandra.Client,
  keyspace: string,
  sensors: number,
  cassandraPid: number | undefined
) =>
  Effect.gen(function* () {
    const table = `${keyspace}.bench_state`
    yield* Effect.promise(() =>
      session.execute(
        `CREATE TABLE IF NOT EXISTS ${table} (
          sensor_id text PRIMARY KEY, user_id text, log_partition int, state text, check_at timestamp, revision bigint
        )`
      )
    )
    const sample = yield* Effect.promise(() =>
      session.execute(`SELECT state FROM ${keyspace}.alert_sensor_states LIMIT 1`)
    )
    const state: string = sample.first()?.get("state") ?? ""
    const options = {
      prepare: true,
      consistency: cassandra.types.consistencies.localQuorum,
      serialConsistency: cassandra.types.consistencies.localSerial
    }
    const sensor = (i: number) => `s${i % sensors}`
    const long = (value: number) => cassandra.types.Long.fromNumber(value)
    const rounds = 2
    return [
      yield* timeStatements(
        "LWT insert (IF NOT EXISTS)",
        sensors,
        (i) =>
          session.execute(
            `INSERT INTO ${table} (sensor_id, user_id, log_partition, state, check_at, revision) VALUES (?, ?, ?, ?, ?, 1) IF NOT EXISTS`,
            [sensor(i), "u", 0, state, new Date()],
            options
          ),
        cassandraPid
      ),
      yield* timeStatements(
        "read by key",
        rounds * sensors,
        (i) => session.execute(`SELECT * FROM ${table} WHERE sensor_id = ?`, [sensor(i)], options),
        cassandraPid
      ),
      yield* timeStatements(
        "plain write",
        rounds * sensors,
        (i) =>
          session.execute(
            `UPDATE ${table} SET state = ?, check_at = ? WHERE sensor_id = ?`,
            [state, new Date(), sensor(i)],
            options
          ),
        cassandraPid
      ),
      // Round r moves every sensor from revision r + 1 to r + 2: a statement only ever waits for its own sensor's previous one.
      yield* timeStatements(
        "LWT update (IF revision = ?)",
        rounds * sensors,
        (i) => {
          const revision = 1 + Math.floor(i / sensors)
          return session.execute(
            `UPDATE ${table} SET state = ?, check_at = ?, revision = ? WHERE sensor_id = ? IF revision = ?`,
            [state, new Date(), long(revision + 1), sensor(i), long(revision)],
            options
          )
        },
        cassandraPid
      )
    ]
  })

// ---------------------------------------------------------------------------------------------
// The run

const program = Effect.gen(function* () {
  // The servers this run starts (none that the environment names or the harness already runs) stop with it.
  const running = Harness.environment()
  const startsKafka = !process.env.KAFKA_BROKERS && running.KAFKA_BROKERS === undefined
  const startsCassandra = !process.env.CASSANDRA_CONTACT_POINTS && running.CASSANDRA_CONTACT_POINTS === undefined
  const started: ReadonlyArray<Harness.Service> = [
    ...(startsKafka ? (["kafka"] as const) : []),
    ...(startsCassandra ? (["cassandra"] as const) : [])
  ]
  const servers = yield* Effect.acquireRelease(
    // PostgreSQL holds the owners' alert settings the notifier reads; the harness only checks it answers.
    Effect.promise(() => Harness.up(["kafka", "cassandra", "postgres"])),
    () => (started.length === 0 ? Effect.void : Effect.promise(() => Harness.down(started)))
  )
  const brokers = servers.KAFKA_BROKERS!
  const contactPoints = servers.CASSANDRA_CONTACT_POINTS!
  const dataCenter = servers.CASSANDRA_LOCAL_DC ?? "datacenter1"
  // The Cassandra JVM's pid, when the harness runs the cluster the run talks to.
  const harnessCassandra = readState().cassandra
  const cassandraPid =
    harnessCassandra !== undefined && `${harnessCassandra.host}:${harnessCassandra.nativePort}` === contactPoints
      ? harnessCassandra.pid
      : undefined

  const now = yield* Clock.currentTimeMillis
  const run = `alerts${now.toString(36)}`
  const prefix = `${run}.`
  const topic = `${prefix}glucose.events`
  const keyspace = `dexmon_bench_${run}`
  const end = Math.floor(now / (5 * 60_000)) * 5 * 60_000

  const records = scriptReadings(run, end, READINGS, SENSORS)
  const sensorsSeen = new Set(records.map((record) => record.sensor)).size
  const spanHours = (records[records.length - 1]!.logTime - records[0]!.logTime) / 3_600_000
  const oldAlerts = new Set(
    records.flatMap((record) => {
      const type = classifyOld(record.value)
      return type === undefined ? [] : [deriveAlertId(record.sensor, record.timestamp, type)]
    })
  ).size

  // The engine first, before Kafka clients and buffers share this process's heap.
  const inputs = records.map(toReadingInput)
  const engine = yield* timedPasses(decideAll(records, inputs), 3)
  const raw = yield* timedPasses(classifyAll(Float64Array.from(records, (record) => record.value)), 1)
  const benchPeakMb = rssKbOf(process.pid) / 1024
  const episodes = engine.result
  yield* Console.log(
    `${records.length} readings of ${sensorsSeen} sensors over ${spanHours.toFixed(1)} h of log time; the engine opens ` +
      `${episodes} episodes (${((episodes / sensorsSeen / spanHours) * 24).toFixed(2)} per sensor-day), the old notifier ` +
      `would write ${oldAlerts} alert rows (${raw.result} low or high readings)`
  )

  const env = { ...process.env, ...servers } as Record<string, string>
  const context = yield* Layer.build(
    KafkaEventLog.layer.pipe(
      Layer.provide(Layer.succeed(Topics, Topics.make(PARTITIONS, prefix))),
      Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord(env)))
    )
  )
  const log = Context.get(context, EventLog)
  const session = new cassandra.Client({ contactPoints: contactPoints.split(","), localDataCenter: dataCenter })
  yield* Effect.acquireRelease(
    Effect.promise(() => session.connect()),
    () => Effect.promise(() => session.shutdown())
  )
  // The run's keyspace and topics go when it ends, whichever way it ends.
  const admin = new Kafka({ clientId: "bench-alerts", brokers: brokers.split(","), logLevel: logLevel.NOTHING }).admin()
  yield* Effect.acquireRelease(
    Effect.promise(() => admin.connect()),
    () => Effect.promise(() => admin.disconnect())
  )
  yield* Effect.addFinalizer(() =>
    Effect.all(
      [
        Effect.tryPromise(() => session.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`)),
        Effect.tryPromise(() => admin.deleteTopics({ topics: Object.values(Topics.make(PARTITIONS, prefix).names) }))
      ],
      { mode: "result" }
    )
  )

  const appendStarted = performance.now()
  yield* Effect.forEach(
    Array.from({ length: Math.ceil(records.length / 1_000) }, (_, i) => records.slice(i * 1_000, (i + 1) * 1_000)),
    (chunk) => log.append(topic, chunk.map(toProducerRecord)),
    { concurrency: 4, discard: true }
  )
  yield* Console.log(
    `appended to ${topic} (${PARTITIONS} partitions) in ${((performance.now() - appendStarted) / 1000).toFixed(1)} s`
  )

  const baseline = yield* measureConsumer({
    args: [
      import.meta.filename,
      "--raw-baseline",
      brokers,
      contactPoints,
      dataCenter,
      keyspace,
      topic,
      `${run}-raw`,
      String(BATCH_SIZE)
    ],
    env: { PATH: process.env.PATH ?? "" },
    log,
    topic,
    groupId: `${run}-raw`,
    total: records.length,
    cassandraPid
  })
  const notifier = yield* measureConsumer({
    args: [fileURLToPath(new URL("../services/notifier/src/main.ts", import.meta.url))],
    env: {
      PATH: process.env.PATH ?? "",
      PORT: String(yield* freePort),
      DEXMON_PROFILE: "production",
      DEXMON_LOG_FORMAT: "json",
      KAFKA_BROKERS: brokers,
      CASSANDRA_CONTACT_POINTS: contactPoints,
      CASSANDRA_LOCAL_DC: dataCenter,
      CASSANDRA_KEYSPACE: keyspace,
      // The owners' alert settings; the benchmark's users have none, so each batch reads no document.
      DATABASE_URL: servers.DATABASE_URL!,
      DEXMON_TOPIC_PREFIX: prefix,
      DEXMON_EVENT_PARTITIONS: String(PARTITIONS),
      DEXMON_NOTIFIER_GROUP: `${run}-notifier`,
      DEXMON_NOTIFIER_BATCH_SIZE: String(BATCH_SIZE),
      // The clock only ticks caught-up partitions; an hour keeps it out of a run that measures consuming.
      DEXMON_ALERT_TICK_EVERY: "1h",
      ...dayRulesEnv,
      // The notifier's Cassandra concurrency, to compare settings: `CASSANDRA_WRITE_CONCURRENCY=128 pnpm bench:alerts`.
      ...(process.env.CASSANDRA_WRITE_CONCURRENCY === undefined
        ? {}
        : { CASSANDRA_WRITE_CONCURRENCY: process.env.CASSANDRA_WRITE_CONCURRENCY })
    },
    log,
    topic,
    groupId: `${run}-notifier`,
    total: records.length,
    cassandraPid
  })

  // Each consumer left exactly what it should: every episode the pure engine opens, one state per sensor, the old rows.
  const count = (table: string) =>
    Effect.promise(() => session.execute(`SELECT count(*) FROM ${keyspace}.${table}`)).pipe(
      Effect.map((result) => Number(result.first()?.get("count") ?? -1))
    )
  const storedEpisodes = yield* count("glucose_alerts_by_id")
  const storedStates = yield* count("alert_sensor_states")
  const storedOld = yield* count("raw_alerts")
  const countsOk = storedEpisodes === episodes && storedStates === sensorsSeen && storedOld === oldAlerts
  yield* Console.log(
    `stored: ${storedEpisodes} episodes (engine: ${episodes}), ${storedStates} sensor states (sensors: ${sensorsSeen}), ` +
      `${storedOld} baseline rows (expected ${oldAlerts}) ${countsOk ? "ok" : "WRONG"}`
  )

  const statements = yield* statementCosts(session, keyspace, sensorsSeen, cassandraPid)

  const cpus = os.cpus()
  const fixed = (value: number, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : "")
  const thousands = (value: number) => Math.round(value).toLocaleString("en-US")
  const consumerRow = (name: string, measured: ConsumerRun, ratio: string) =>
    `| ${name} | ${thousands(readingsPerSecond(measured))} | ${ratio} | ${fixed((measured.done.ms - measured.started.ms) / 1000)} | ` +
    `${fixed(measured.done.cpu)} (${fixed(measured.done.cpu - measured.first.cpu)}) | ${measured.peakRssMb.toFixed(0)} | ` +
    `${fixed(measured.done.cassandraCpu - measured.first.cassandraCpu)} |`
  const engineRow = (name: string, passes: Passes, ratio: string) =>
    `| ${name} | ${thousands(records.length / passes.seconds)} | ${ratio} | | ${fixed(passes.cpuSecondsPerPass, 3)} | ${benchPeakMb.toFixed(0)} | |`
  yield* Console.log(
    [
      "",
      `Machine: ${cpus[0]?.model} × ${cpus.length}, Node ${process.version}; ${records.length} readings, ${sensorsSeen} sensors, ` +
        `${PARTITIONS} partitions, batches of ${BATCH_SIZE}`,
      "",
      "| case | readings/s | ratio | end to end s | CPU s (in window) | peak RSS MB | Cassandra CPU s (in window) |",
      "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
      consumerRow(
        "notifier (own process): state reads, episodes, state writes by version, commit",
        notifier,
        (readingsPerSecond(notifier) / readingsPerSecond(baseline)).toFixed(2)
      ),
      consumerRow("raw kafkajs + one INSERT per low/high reading, commit", baseline, "1"),
      engineRow("`decide` in-process, no I/O", engine, (raw.seconds / engine.seconds).toPrecision(2)),
      engineRow("raw loop: value against thresholds", raw, "1"),
      "",
      "readings/s and CPU in window: from the first commit seen to all committed; end to end: from the spawn.",
      `notifier: ${fixed(secondsOf(notifier))} s consuming after ${fixed((notifier.first.ms - notifier.started.ms) / 1000)} s to the first commit; ` +
        `baseline: ${fixed(secondsOf(baseline))} s after ${fixed((baseline.first.ms - baseline.started.ms) / 1000)} s. ` +
        `Engine and loop: one pass of ${records.length} readings (the mean of ${engine.passes} and ${raw.passes} passes after one to warm up); ` +
        `their peak RSS is this process's, with the scripted readings in it.`,
      "",
      `Cassandra statements, ${WRITE_CONCURRENCY} in flight, on a table of alert_sensor_states' shape holding a notifier's state:`,
      "",
      "| statement | per s | p50 ms | p99 ms | Cassandra CPU ms each |",
      "| --- | ---: | ---: | ---: | ---: |",
      ...statements.map(
        (cost) =>
          `| ${cost.name}${cost.notApplied > 0 ? ` (${cost.notApplied} not applied)` : ""} | ${thousands(cost.perSecond)} | ` +
          `${cost.p50.toFixed(1)} | ${cost.p99.toFixed(1)} | ${fixed(cost.cassandraCpuMs, 2)} |`
      )
    ].join("\n")
  )
  if (!countsOk) return yield* Effect.die(new Error("the stores do not hold what the engine decided"))
})

const [mode, ...args] = process.argv.slice(2)
if (mode === "--raw-baseline") {
  NodeRuntime.runMain(Effect.scoped(rawBaseline(args)))
} else {
  NodeRuntime.runMain(Effect.scoped(program))
}
