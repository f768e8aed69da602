// Archiver benchmark on a real PostgreSQL (DATABASE_URL, default the
// machine's 127.0.0.1:5432) and the S3 server of `node infra/cli.ts up s3`:
// rows/s archived and peak memory for a history of 1,000,000 readings, next to
// a raw baseline in the same run on the same machine. The baseline reads every
// due row with one streamed query, encodes one Parquet object per user and UTC
// day and puts it, 4 in flight: no ledger, no read-back, no delete. Both run
// as child processes whose RSS is sampled from /proc, so their peaks compare.
//
//   pnpm bench:archive        (BENCH_USERS / BENCH_READINGS_PER_USER shrink it)
import { spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import os from "node:os"
import { fileURLToPath } from "node:url"
import { DeleteObjectsCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from "@aws-sdk/client-s3"
import { dayOf, encodeReadings } from "@dexmon/archive"
import { Database, PostgresArchiveLedger, SqlReadingStore } from "@dexmon/ports"
import { freshDatabase, readingHistory, seedReadingHistory } from "@dexmon/testing"
import { NodeRuntime } from "@effect/platform-node"
import { Clock, Console, Context, Effect, Layer, Redacted, Stream } from "effect"
import { SqlClient } from "effect/sql"
import { readState } from "../infra/State.ts"
import { cpuSecondsOf } from "./e2e/proc.ts"

const USERS = Number(process.env.BENCH_USERS ?? 200)
const READINGS_PER_USER = Number(process.env.BENCH_READINGS_PER_USER ?? 5_000)
const PUTS_IN_FLIGHT = 4

// The harness's S3 server unless the environment names another; both children get exactly these.
const s3Env = {
  S3_ENDPOINT: process.env.S3_ENDPOINT || "http://127.0.0.1:19900",
  S3_BUCKET: process.env.S3_BUCKET || "dexmon-archive",
  S3_REGION: process.env.S3_REGION || "us-east-1",
  S3_FORCE_PATH_STYLE: process.env.S3_FORCE_PATH_STYLE || "true",
  AWS_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID || "dexmon",
  AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY || "dexmon-secret"
}
const s3Client = Effect.acquireRelease(
  Effect.sync(
    () =>
      new S3Client({
        endpoint: s3Env.S3_ENDPOINT,
        region: s3Env.S3_REGION,
        forcePathStyle: s3Env.S3_FORCE_PATH_STYLE === "true",
        credentials: { accessKeyId: s3Env.AWS_ACCESS_KEY_ID, secretAccessKey: s3Env.AWS_SECRET_ACCESS_KEY }
      })
  ),
  (client) => Effect.sync(() => client.destroy())
)

interface Totals {
  readonly rows: number
  readonly objects: number
  readonly bytes: number
}

/**
 * The baseline, run as `node benchmarks/archive.ts --raw-baseline <db url> <prefix> <cutoff ms>`:
 * the least work that still turns the due rows into the same Parquet objects
 * in S3. The query streams, as the archiver reads in bounded chunks, so the
 * peaks compare the work rather than one side holding every row at once.
 * Prints its totals as one JSON line on stdout.
 */
const rawBaseline = (prefix: string, cutoff: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const s3 = yield* s3Client
    // The columns of PostgresArchiveLedger's readChunk, but every due row of every user at once.
    const due = sql<PostgresArchiveLedger.ReadingRecordRow>`
      SELECT ${PostgresArchiveLedger.recordColumns(sql)}
      FROM glucose_readings
      WHERE "timestamp" < ${new Date(cutoff).toISOString()}::timestamptz
      ORDER BY user_id, "timestamp"`.stream
    const totals = yield* due.pipe(
      Stream.map(PostgresArchiveLedger.toReadingRecord),
      // Ordered by user then time, so each (user, UTC day) is one adjacent run.
      Stream.groupAdjacentBy((row) => `date=${dayOf(row.timestamp)}/user=${row.user_id}`),
      Stream.mapEffect(
        ([group, rows]) =>
          Effect.flatMap(encodeReadings(rows), (bytes) => {
            const put = new PutObjectCommand({
              Bucket: s3Env.S3_BUCKET,
              Key: `${prefix}/${group}/part-0.parquet`,
              Body: bytes
            })
            return Effect.tryPromise(() => s3.send(put)).pipe(Effect.as({ rows: rows.length, bytes: bytes.byteLength }))
          }),
        { concurrency: PUTS_IN_FLIGHT }
      ),
      Stream.runFold(
        (): Totals => ({ rows: 0, objects: 0, bytes: 0 }),
        (sum, object) => ({ rows: sum.rows + object.rows, objects: sum.objects + 1, bytes: sum.bytes + object.bytes })
      )
    )
    yield* Console.log(JSON.stringify(totals))
  })

interface ChildRun {
  readonly wallSeconds: number
  readonly peakRssMb: number
  /** The child's user plus system CPU seconds, as last sampled before it exited (at most 50 ms short). */
  readonly cpuSeconds: number
  /** The harness's S3 server's CPU seconds over the same span, when the harness runs it. */
  readonly s3CpuSeconds: number
  readonly stdout: string
}

/** The S3 server's process, when the harness runs the one the runs use (its CPU is part of what each run costs). */
const s3ServerPid = (() => {
  const harness = readState().s3
  return harness !== undefined && new URL(s3Env.S3_ENDPOINT).port === String(harness.port) ? harness.pid : undefined
})()

/**
 * Runs `node <args>` and samples its memory every 50 ms: the largest VmRSS
 * seen, or VmHWM (the kernel's own peak) if that is larger, since a peak can
 * fall between two samples. The wall time includes Node's start-up, alike for both.
 */
const runMeasured = (args: ReadonlyArray<string>, env: Record<string, string>) =>
  Effect.callback<ChildRun, Error>((resume) => {
    const started = performance.now()
    const s3CpuAtStart = s3ServerPid === undefined ? Number.NaN : cpuSecondsOf(s3ServerPid)
    const child = spawn(process.execPath, args, {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "inherit"]
    })
    let peakKb = 0
    let cpuSeconds = 0
    const sample = () => {
      if (child.pid !== undefined) cpuSeconds = Math.max(cpuSeconds, cpuSecondsOf(child.pid))
      try {
        for (const [, kb] of readFileSync(`/proc/${child.pid}/status`, "utf8").matchAll(
          /^Vm(?:RSS|HWM):\s+(\d+) kB/gm
        )) {
          peakKb = Math.max(peakKb, Number(kb))
        }
      } catch {
        // The child exited between two samples: its peak was read by the last one.
      }
    }
    const sampler = setInterval(sample, 50)
    const output: Array<Buffer> = []
    child.stdout.on("data", (chunk: Buffer) => output.push(chunk))
    child.on("error", (error) => resume(Effect.fail(error)))
    child.on("close", (code) => {
      clearInterval(sampler)
      const stdout = Buffer.concat(output).toString("utf8")
      const wallSeconds = (performance.now() - started) / 1000
      const s3CpuSeconds = s3ServerPid === undefined ? Number.NaN : cpuSecondsOf(s3ServerPid) - s3CpuAtStart
      resume(
        code === 0
          ? Effect.succeed({ wallSeconds, peakRssMb: peakKb / 1024, cpuSeconds, s3CpuSeconds, stdout })
          : Effect.fail(new Error(`node ${args.join(" ")} exited with ${code}:\n${stdout.slice(-4_000)}`))
      )
    })
    return Effect.sync(() => {
      clearInterval(sampler)
      child.kill("SIGKILL")
    })
  })

/** The archiver's totals, from the `archive run finished` line it logs as JSON. */
const finishedTotals = (stdout: string): Totals => {
  const line = stdout.split("\n").find((text) => text.includes("archive run finished"))
  const message: ReadonlyArray<unknown> = line === undefined ? [] : [JSON.parse(line).message].flat()
  const totals = message.find((part): part is Totals => typeof part === "object" && part !== null && "rows" in part)
  if (totals === undefined)
    throw new Error(`the archiver logged no "archive run finished" line:\n${stdout.slice(-4_000)}`)
  return totals
}

/** Removes every object under a prefix, a page of up to 1,000 keys at a time. */
const removePrefix = (s3: S3Client, prefix: string) =>
  Effect.gen(function* () {
    for (;;) {
      const page = yield* Effect.tryPromise(() =>
        s3.send(new ListObjectsV2Command({ Bucket: s3Env.S3_BUCKET, Prefix: `${prefix}/` }))
      )
      const keys = (page.Contents ?? []).flatMap((object) => (object.Key === undefined ? [] : [{ Key: object.Key }]))
      if (keys.length === 0) return
      yield* Effect.tryPromise(() =>
        s3.send(new DeleteObjectsCommand({ Bucket: s3Env.S3_BUCKET, Delete: { Objects: keys, Quiet: true } }))
      )
    }
  })

const program = Effect.gen(function* () {
  const run = Date.now().toString(36)
  const serverUrl = process.env.DATABASE_URL || "postgres://postgres@127.0.0.1:5432/postgres"
  const database = `dexmon_bench_${run}`
  const rawPrefix = `bench-raw/${run}`
  const archivePrefix = `bench-archive/${run}`

  const bench = yield* freshDatabase({ server: serverUrl, name: database })
  const s3 = yield* s3Client
  yield* Effect.addFinalizer(() =>
    Effect.ignore(Effect.all([removePrefix(s3, rawPrefix), removePrefix(s3, archivePrefix)]))
  )
  const context = yield* Layer.build(
    PostgresArchiveLedger.layer.pipe(
      Layer.provideMerge(SqlReadingStore.layer),
      Layer.provideMerge(Database.layerPgClient(Redacted.make(bench.url)))
    )
  )
  const sql = Context.get(context, SqlClient.SqlClient)

  const now = yield* Clock.currentTimeMillis
  const history = readingHistory({
    now,
    users: USERS,
    readingsPerUser: READINGS_PER_USER,
    days: 120,
    retentionDays: 90
  })
  const seedStarted = performance.now()
  yield* seedReadingHistory(history).pipe(Effect.provide(context))
  // Settled statistics and visibility map, so autovacuum does not land inside one of the timed runs.
  yield* sql`VACUUM ANALYZE glucose_readings`
  yield* Console.log(
    `seeded ${history.total} readings (${USERS} users × ${READINGS_PER_USER} over 120 days, ${history.due} older than 90 days) in ${((performance.now() - seedStarted) / 1000).toFixed(1)} s`
  )

  const raw = yield* runMeasured(
    [import.meta.filename, "--raw-baseline", bench.url, rawPrefix, String(history.boundary)],
    s3Env
  )
  const rawTotals: Totals = JSON.parse(raw.stdout.trim().split("\n").at(-1)!)
  const archiver = yield* runMeasured([fileURLToPath(new URL("../services/archiver/src/main.ts", import.meta.url))], {
    ...s3Env,
    DATABASE_URL: bench.url,
    DEXMON_ARCHIVE_PREFIX: archivePrefix,
    DEXMON_LOG_FORMAT: "json",
    DEXMON_HOT_RETENTION: "90d"
  })
  const archived = finishedTotals(archiver.stdout)

  // Every reading in exactly one place: the recent ones hot, the due ones in committed objects.
  const [hot] = yield* sql<{ rows: number }>`SELECT count(*)::int AS rows FROM glucose_readings`
  const [ledger] = yield* sql<{ rows: number; objects: number }>`
    SELECT coalesce(sum(row_count), 0)::int AS rows, count(*)::int AS objects FROM archive_objects WHERE state = 'committed'`
  const hotOk = hot?.rows === history.total - history.due
  const ledgerOk = ledger?.rows === history.due && archived.rows === history.due && rawTotals.rows === history.due
  yield* Console.log(
    `hot store: ${hot?.rows} rows (expected ${history.total - history.due}) ${hotOk ? "ok" : "WRONG"}; ` +
      `committed objects: ${ledger?.objects} holding ${ledger?.rows} rows (expected ${history.due}; archiver logged ${archived.rows}, baseline ${rawTotals.rows}) ${ledgerOk ? "ok" : "WRONG"}`
  )

  const cpus = os.cpus()
  const rate = (totals: Totals, measured: ChildRun) => totals.rows / measured.wallSeconds
  const row = (name: string, totals: Totals, measured: ChildRun) =>
    `| ${name} | ${totals.rows} | ${totals.objects} | ${measured.wallSeconds.toFixed(1)} | ${Math.round(rate(totals, measured))} | ${measured.cpuSeconds.toFixed(1)} | ${Number.isNaN(measured.s3CpuSeconds) ? "" : measured.s3CpuSeconds.toFixed(1)} | ${measured.peakRssMb.toFixed(0)} |`
  yield* Console.log(
    [
      "",
      `Machine: ${cpus[0]?.model} × ${cpus.length}, Node ${process.version}, PostgreSQL ${(yield* sql<{ server_version: string }>`SHOW server_version`)[0]?.server_version}`,
      "",
      "| run | rows | objects | wall s | rows/s | CPU s | S3 server CPU s | peak RSS MB |",
      "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
      row("raw baseline (query + encode + put)", rawTotals, raw),
      row("DexMon archiver (ledger, verify by read-back, delete)", archived, archiver),
      "",
      `archiver / raw: wall ×${(archiver.wallSeconds / raw.wallSeconds).toFixed(2)}, rows/s ×${(rate(archived, archiver) / rate(rawTotals, raw)).toFixed(2)}, CPU ×${(archiver.cpuSeconds / raw.cpuSeconds).toFixed(2)}, peak RSS ×${(archiver.peakRssMb / raw.peakRssMb).toFixed(2)}`,
      "CPU s: the process's own (user + system, from /proc), its start-up included; S3 server CPU s: the harness's S3Proxy over the same span."
    ].join("\n")
  )
  if (!hotOk || !ledgerOk) return yield* Effect.die(new Error("the archive does not account for every reading"))
})

const [mode, databaseUrl, prefix, cutoff] = process.argv.slice(2)
if (mode === "--raw-baseline" && databaseUrl !== undefined && prefix !== undefined) {
  rawBaseline(prefix, Number(cutoff)).pipe(
    Effect.provide(Database.layerPgClient(Redacted.make(databaseUrl))),
    Effect.scoped,
    NodeRuntime.runMain
  )
} else {
  NodeRuntime.runMain(Effect.scoped(program))
}
