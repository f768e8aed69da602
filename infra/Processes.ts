// Small process, port and file helpers shared by the servers the harness starts.
import { spawn } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { connect } from "node:net"
import { setTimeout as sleep } from "node:timers/promises"

export const log = (message: string): void => {
  // stderr, so that `node infra/cli.ts env` can be eval'ed from stdout.
  process.stderr.write(`infra: ${message}\n`)
}

export const seconds = (milliseconds: number): string => `${(milliseconds / 1000).toFixed(1)} s`

/** True while the process exists and is not a zombie waiting to be reaped. */
export const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
  try {
    // /proc/<pid>/stat is "pid (comm) state ..."; comm may contain spaces, so split after the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z"
  } catch {
    return true
  }
}

/** The argv of a running process, or [] when it is gone (Linux only, which is all this harness targets). */
export const commandLine = (pid: number): ReadonlyArray<string> => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8")
      .split("\0")
      .filter((arg) => arg.length > 0)
  } catch {
    return []
  }
}

/** SIGTERM, then SIGKILL if the process is still there after `graceMs`. Resolves once it is gone. */
export const stopProcess = async (pid: number, graceMs = 30_000): Promise<void> => {
  const waitForExit = async (timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs
    while (isAlive(pid)) {
      if (Date.now() > deadline) return false
      await sleep(100)
    }
    return true
  }
  const signal = (name: NodeJS.Signals) => {
    try {
      process.kill(pid, name)
    } catch {
      // already gone
    }
  }
  signal("SIGTERM")
  if (await waitForExit(graceMs)) return
  log(`pid ${pid} did not stop within ${seconds(graceMs)} of SIGTERM; sending SIGKILL`)
  signal("SIGKILL")
  if (!(await waitForExit(10_000))) throw new Error(`pid ${pid} survived SIGKILL`)
}

/** Whether something accepts TCP connections on host:port. */
export const acceptsTcp = (host: string, port: number, timeoutMs = 1_000): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = connect({ host, port })
    const finish = (result: boolean) => {
      socket.destroy()
      resolve(result)
    }
    socket.setTimeout(timeoutMs, () => finish(false))
    socket.once("connect", () => finish(true))
    socket.once("error", () => finish(false))
  })

export interface CommandResult {
  readonly exitCode: number | null
  readonly output: string
}

/** Runs a command to completion and collects stdout and stderr together (for error messages). */
export const runCommand = (
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly cwd?: string; readonly env?: NodeJS.ProcessEnv } = {}
): Promise<CommandResult> =>
  new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...options, stdio: ["ignore", "pipe", "pipe"] })
    const chunks: Array<Buffer> = []
    child.stdout.on("data", (chunk: Buffer) => chunks.push(chunk))
    child.stderr.on("data", (chunk: Buffer) => chunks.push(chunk))
    child.once("error", reject)
    child.once("close", (exitCode) => resolve({ exitCode, output: Buffer.concat(chunks).toString("utf8") }))
  })

/** The last `lines` lines of a text file, or "" when it does not exist. */
export const tailOfFile = (path: string, lines = 40): string =>
  existsSync(path) ? readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n") : ""

export const tailOfText = (text: string, lines = 40): string => text.trimEnd().split("\n").slice(-lines).join("\n")
