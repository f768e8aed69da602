// kcat, the independent Kafka client the integration tests read topics with: the machine's when it is on
// PATH, otherwise Debian's package and the two libraries it adds to the system's (librdkafka1, libyajl2),
// fetched with `apt-get download` and unpacked with `dpkg -x` under .infra/kcat/<version>/. Neither needs
// root, so a clean CI machine gets kcat the way it gets the servers' jars: by the harness, on first use.
import { chmodSync, existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs"
import { join, relative } from "node:path"
import { fetchIntoPlace, fetchPackages } from "../debian/DebianPackages.ts"
import { log, runCommand, seconds, tailOfText } from "../Processes.ts"
import { infraDirectory } from "../State.ts"

/** kcat's newest release (2021), packaged by Debian 12 and Ubuntu 22.04/24.04; override with DEXMON_KCAT_VERSION. */
export const defaultKcatVersion = "1.7.1"
/** kcat itself and the libraries it needs that a Debian or Ubuntu machine lacks; libc, OpenSSL, zstd etc. it has. */
const packages = ["kcat", "librdkafka1", "libyajl2"] as const

const kcatDirectory = join(infraDirectory, "kcat")

export const kcatVersion = (): string => process.env.DEXMON_KCAT_VERSION || defaultKcatVersion

export interface Kcat {
  /** What to run: `kcat` (the machine's) or the unpacked binary's absolute path. */
  readonly command: string
  /** Variables to add to the environment of `command` (LD_LIBRARY_PATH for the unpacked one; none for the machine's). */
  readonly env: Record<string, string>
  /**
   * A folder holding an executable `kcat` that needs no `env` (a script that sets it), to put first
   * on PATH for tests that run plain `kcat`; undefined when kcat is the machine's.
   */
  readonly binDirectory: string | undefined
  /** What `kcat -V` says of the versions: "kcat 1.7.1, librdkafka 2.0.2". */
  readonly version: string
  /** True when this call fetched it (the first use on this machine). */
  readonly downloaded: boolean
}

let pending: Promise<Kcat> | undefined

/**
 * kcat, ready to run: the machine's when `kcat -V` runs from PATH, otherwise the one unpacked under
 * .infra/kcat/<version>/, fetched first if it is not there yet. Every answer has run `kcat -V`.
 * Safe to call from several processes at once (each fetches into a folder of its own and renames it
 * into place; the first rename wins) and many times in one (the first call's answer is kept). A
 * failure says which command failed and what it printed.
 */
export const ensureKcat = (): Promise<Kcat> => {
  pending ??= findOrFetch().catch((error: unknown) => {
    pending = undefined
    throw error
  })
  return pending
}

const findOrFetch = async (): Promise<Kcat> => {
  const machine = await machineKcat()
  if (machine !== undefined) return machine
  return unpackedKcat(join(kcatDirectory, kcatVersion()), kcatVersion()).catch((error: unknown) => {
    throw new Error(
      `kcat is not on PATH and the harness could not provide it: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error }
    )
  })
}

/** The machine's kcat, or undefined when PATH has none that runs. */
const machineKcat = async (): Promise<Kcat | undefined> => {
  const result = await runCommand("kcat", ["-V"]).catch(() => undefined)
  if (result === undefined || result.exitCode !== 0) return undefined
  return { command: "kcat", env: {}, binDirectory: undefined, version: versionLine(result.output), downloaded: false }
}

/**
 * kcat `version` unpacked in `versionDirectory` (`root/` as `dpkg -x` leaves it, `bin/kcat` a script
 * that runs it, `debs/` the packages), fetched when missing. Exported for the test of the fetch itself,
 * which points it at an empty folder; everything else calls `ensureKcat`.
 */
export const unpackedKcat = async (versionDirectory: string, version: string): Promise<Kcat> => {
  if (existsSync(join(versionDirectory, "bin", "kcat"))) return verified(versionDirectory, false)
  const started = performance.now()
  log(`kcat ${version}: fetching ${packages.join(", ")} with apt-get download into ${versionDirectory}`)
  await fetchIntoPlace(
    versionDirectory,
    (partial) => fetchInto(partial, version),
    (partial) => verified(partial, true)
  )
  const kcat = await verified(versionDirectory, true)
  log(`kcat ${version} ready in ${seconds(performance.now() - started)}: ${kcat.version} (${versionDirectory})`)
  return kcat
}

/** Downloads the packages into `<directory>/debs`, checks kcat's version and unpacks them all into `<directory>/root`. */
const fetchInto = async (directory: string, version: string): Promise<void> => {
  await fetchPackages({ packages, main: "kcat", version, versionVariable: "DEXMON_KCAT_VERSION", directory })

  const libraries = libraryDirectory(join(directory, "root"))
  const bin = join(directory, "bin")
  mkdirSync(bin)
  // Paths relative to the script's own place: the folder is renamed after this is written.
  writeFileSync(
    join(bin, "kcat"),
    [
      "#!/bin/sh",
      "# Generated by infra/kcat/Kcat.ts: runs the kcat unpacked beside this folder with the libraries unpacked with it.",
      'root="$(dirname "$(dirname "$(readlink -f "$0")")")/root"',
      `LD_LIBRARY_PATH="$root/${relative(join(directory, "root"), libraries)}\${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$root/usr/bin/kcat" "$@"`,
      ""
    ].join("\n")
  )
  chmodSync(join(bin, "kcat"), 0o755)
}

/** Runs `kcat -V` from `directory` and answers it; throws with what it printed (and what `ldd` misses) when it fails. */
const verified = async (directory: string, downloaded: boolean): Promise<Kcat> => {
  const command = join(directory, "root", "usr", "bin", "kcat")
  const libraries = libraryDirectory(join(directory, "root"))
  const inherited = process.env.LD_LIBRARY_PATH
  const env = { LD_LIBRARY_PATH: inherited ? `${libraries}:${inherited}` : libraries }
  const result = await runCommand(command, ["-V"], { env: { ...process.env, ...env } }).catch((error: unknown) => ({
    exitCode: null,
    output: error instanceof Error ? error.message : String(error)
  }))
  if (result.exitCode !== 0) {
    const ldd = await runCommand("ldd", [command], { env: { ...process.env, ...env } }).catch(() => undefined)
    const missing = (ldd?.output ?? "")
      .split("\n")
      .filter((line) => line.includes("not found"))
      .map((line) => line.trim())
    throw new Error(
      `${command} -V failed (exit ${result.exitCode}) with LD_LIBRARY_PATH=${env.LD_LIBRARY_PATH}:\n${tailOfText(result.output, 20)}` +
        (missing.length > 0 ? `\nlibraries the machine lacks: ${missing.join("; ")}` : "") +
        (downloaded ? "" : `\n(remove ${directory} to fetch it again)`)
    )
  }
  return { command, env, binDirectory: join(directory, "bin"), version: versionLine(result.output), downloaded }
}

/** The folder `dpkg -x` put librdkafka.so.1 in (usr/lib/<multiarch triplet>). */
const libraryDirectory = (root: string): string => {
  const found = readdirSync(join(root, "usr", "lib"), { recursive: true, withFileTypes: true }).find(
    (entry) => entry.name === "librdkafka.so.1"
  )
  if (found === undefined) throw new Error(`no librdkafka.so.1 under ${join(root, "usr", "lib")}`)
  return found.parentPath
}

/** "kcat 1.7.1, librdkafka 2.0.2" from the "Version 1.7.1 (JSON, ..., librdkafka 2.0.2 builtin.features=...)" line. */
const versionLine = (output: string): string => {
  const versions = /^Version (\S+) .*librdkafka (\S+)/m.exec(output)
  return versions === null ? tailOfText(output, 1).trim() : `kcat ${versions[1]}, librdkafka ${versions[2]}`
}

/** One line for `infra status`, without fetching anything. */
export const kcatStatus = async (): Promise<string> => {
  const machine = await machineKcat()
  if (machine !== undefined) return `kcat: the machine's (${machine.version})`
  const versionDirectory = join(kcatDirectory, kcatVersion())
  if (!existsSync(join(versionDirectory, "bin", "kcat"))) {
    return `kcat: not on PATH and not fetched yet (\`up kcat\` or the first test that reads with it fetches it)`
  }
  return verified(versionDirectory, false).then(
    (kcat) => `kcat: ${kcat.version}, unpacked in ${versionDirectory}`,
    (error: unknown) =>
      `kcat: fetched into ${versionDirectory} but does NOT run: ${error instanceof Error ? error.message : String(error)}`
  )
}
