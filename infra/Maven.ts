// Fetching a server's jars from Maven Central, shared by every server of the harness.
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { log, runCommand, tailOfText } from "./Processes.ts"

/** Debian's Maven 3.8 defaults to maven-dependency-plugin 2.8; every generated pom pins this one. */
export const dependencyPluginVersion = "3.8.1"

// Debian's Maven 3.8 writes ANSI reset codes even with -B and -Dstyle.color=never.
const ansiCode = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g")
const withoutAnsiCodes = (text: string): string => text.replace(ansiCode, "")

/**
 * The folder holding a server's jars (`<versionDirectory>/lib`), copied there by Maven from a
 * generated pom on first use. Each server has its own folder: their logging stacks clash. The copy
 * goes to lib.partial and is renamed when complete, so an interrupted download is redone.
 */
export const fetchJars = async (options: {
  readonly name: string
  readonly version: string
  readonly versionDirectory: string
  readonly pom: string
}): Promise<{ readonly libDirectory: string; readonly downloaded: boolean }> => {
  const { name, version, versionDirectory } = options
  const libDirectory = join(versionDirectory, "lib")
  if (existsSync(libDirectory)) return { libDirectory, downloaded: false }
  const partialDirectory = join(versionDirectory, "lib.partial")
  rmSync(partialDirectory, { recursive: true, force: true })
  mkdirSync(versionDirectory, { recursive: true })
  writeFileSync(join(versionDirectory, "pom.xml"), options.pom)
  log(`${name.toLowerCase()} ${version}: fetching jars with Maven into ${libDirectory}`)
  const maven = await runCommand(
    "mvn",
    [
      "-q",
      "-B",
      "-f",
      join(versionDirectory, "pom.xml"),
      "dependency:copy-dependencies",
      "-DincludeScope=runtime",
      `-DoutputDirectory=${partialDirectory}`
    ],
    { cwd: versionDirectory }
  )
  if (maven.exitCode !== 0) {
    throw new Error(
      `mvn could not fetch ${name} ${version} (exit ${maven.exitCode}):\n${tailOfText(withoutAnsiCodes(maven.output))}`
    )
  }
  renameSync(partialDirectory, libDirectory)
  return { libDirectory, downloaded: true }
}
