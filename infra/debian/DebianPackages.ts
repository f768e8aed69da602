// Debian packages the harness unpacks without root: fetched with `apt-get download` and unpacked with `dpkg -x`
// under .infra, so a clean CI machine gets a client or server the way it gets the servers' jars: by the harness,
// on first use. kcat (infra/kcat) and Prometheus' tools (infra/prometheus) come this way.
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from "node:fs"
import { join } from "node:path"
import { log, runCommand, tailOfText } from "../Processes.ts"

/**
 * `apt-get download` of `packages` into `debs`, with the machine's package lists. Those can be missing
 * (images that delete them) or stale (a security update replaced a version they name); then a second
 * try with lists of its own, fetched by `apt-get update` into `<directory>/apt` (no root needed).
 * `what` names the caller in the log and in the error.
 */
export const aptGetDownload = async (
  what: string,
  packages: ReadonlyArray<string>,
  directory: string,
  debs: string
): Promise<void> => {
  const first = await runCommand("apt-get", ["-q", "download", ...packages], { cwd: debs })
  if (first.exitCode === 0) return
  log(`${what}: apt-get download with the machine's package lists failed; fetching lists into ${directory}/apt`)
  const lists = join(directory, "apt", "lists")
  const cache = join(directory, "apt", "cache")
  mkdirSync(join(lists, "partial"), { recursive: true })
  mkdirSync(join(cache, "archives", "partial"), { recursive: true })
  const ownLists = [
    "-o",
    `Dir::State::Lists=${lists}`,
    "-o",
    `Dir::Cache=${cache}`,
    // The lock of a folder only this process uses; without it, a user other than root may not run `update`.
    "-o",
    "Debug::NoLocking=1"
  ]
  const update = await runCommand("apt-get", ["-q", ...ownLists, "update"], { cwd: debs })
  const second =
    update.exitCode === 0
      ? await runCommand("apt-get", ["-q", ...ownLists, "download", ...packages], { cwd: debs })
      : undefined
  rmSync(join(directory, "apt"), { recursive: true, force: true })
  if (second?.exitCode === 0) return
  throw new Error(
    [
      `apt-get download ${packages.join(" ")} failed (exit ${first.exitCode}):`,
      tailOfText(first.output, 20),
      // `update` can exit 0 having fetched nothing (a mirror it cannot reach is a warning): its output says why.
      `apt-get update into ${lists} (exit ${update.exitCode}):`,
      tailOfText(update.output, 20),
      ...(second === undefined
        ? []
        : [`apt-get download with those lists failed too (exit ${second.exitCode}):`, tailOfText(second.output, 20)])
    ].join("\n")
  )
}

/** Runs a command that must succeed and answers its output. */
export const succeeded = async (command: string, args: ReadonlyArray<string>): Promise<string> => {
  const result = await runCommand(command, args)
  if (result.exitCode !== 0) {
    throw new Error(`${command} ${args.join(" ")} failed (exit ${result.exitCode}):\n${tailOfText(result.output, 20)}`)
  }
  return result.output
}

/** "1.7.1" of Debian's "1.7.1-2" or "1:1.7.1-1build2"; "2.42.0" of "2.42.0+ds-5+deb12u1". */
export const upstreamVersion = (debianVersion: string): string =>
  debianVersion
    .replace(/^\d+:/, "")
    .replace(/-[^-]*$/, "")
    .replace(/\+ds\d*$/, "")

/**
 * Downloads `packages` into `<directory>/debs`, checks that the one named `main` is `version` upstream (else
 * says which variable picks the version apt offers), and unpacks them all into `<directory>/root`.
 */
export const fetchPackages = async (options: {
  readonly packages: ReadonlyArray<string>
  readonly main: string
  readonly version: string
  readonly versionVariable: string
  readonly directory: string
}): Promise<void> => {
  const { packages, main, version, versionVariable, directory } = options
  const debs = join(directory, "debs")
  mkdirSync(debs)
  await aptGetDownload(main, packages, directory, debs)
  const files = readdirSync(debs).filter((file) => file.endsWith(".deb"))
  const mainDeb = files.find((file) => file.startsWith(`${main}_`))
  if (mainDeb === undefined) {
    throw new Error(`apt-get download left no ${main}_*.deb in ${debs} (found: ${files.join(", ") || "nothing"})`)
  }
  const packaged = (await succeeded("dpkg-deb", ["-f", join(debs, mainDeb), "Version"])).trim()
  if (upstreamVersion(packaged) !== version) {
    throw new Error(
      `apt offers ${main} ${packaged}, not ${version}: set ${versionVariable}=${upstreamVersion(packaged)} to use it`
    )
  }
  for (const file of files) await succeeded("dpkg", ["-x", join(debs, file), join(directory, "root")])
}

/**
 * Fills `versionDirectory` by `fetch` into a folder of its own beside it, checked by `verify` before it is
 * renamed into place, so that what cannot run never lands where the next call would trust it. Several
 * processes may fetch at once: the first rename wins, and the others use that folder.
 */
export const fetchIntoPlace = async (
  versionDirectory: string,
  fetch: (partial: string) => Promise<void>,
  verify: (partial: string) => Promise<unknown>
): Promise<void> => {
  mkdirSync(join(versionDirectory, ".."), { recursive: true })
  const partial = mkdtempSync(`${versionDirectory}.partial-`)
  chmodSync(partial, 0o755)
  try {
    await fetch(partial)
    await verify(partial)
    try {
      renameSync(partial, versionDirectory)
    } catch (error) {
      // Another process renamed its own copy first: use that one.
      const code = (error as NodeJS.ErrnoException).code
      if (code !== "ENOTEMPTY" && code !== "EEXIST") throw error
    }
  } finally {
    rmSync(partial, { recursive: true, force: true })
  }
}
