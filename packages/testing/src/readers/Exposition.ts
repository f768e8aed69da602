/** One sample of the Prometheus text exposition format. */
export interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?$/
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g

/**
 * Parses the text exposition format strictly: every line is a comment
 * (`# HELP`, `# TYPE`) or a sample with a numeric value, and every sample's
 * family was declared by a `# TYPE` line. A line that is neither fails.
 */
export const parseExposition = (text: string): ReadonlyArray<Sample> => {
  const samples: Array<Sample> = []
  const families = new Set<string>()
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("# HELP ")) continue
    if (line.startsWith("# TYPE ")) {
      const [, , family, type] = line.split(" ")
      if (!["counter", "gauge", "histogram", "summary", "untyped"].includes(type ?? "")) {
        throw new Error(`bad TYPE line: ${line}`)
      }
      families.add(family!)
      continue
    }
    const match = SAMPLE.exec(line)
    if (match === null) throw new Error(`not a sample line: ${line}`)
    const name = match[1]!
    const family = name.replace(/_(bucket|sum|count|total|created)$/, "")
    if (!families.has(name) && !families.has(family)) throw new Error(`sample of an undeclared family: ${line}`)
    const value = Number(match[4] === "+Inf" ? Infinity : match[4] === "-Inf" ? -Infinity : match[4])
    if (Number.isNaN(value) && match[4] !== "NaN") throw new Error(`not a number: ${line}`)
    const labels: Record<string, string> = {}
    for (const label of (match[3] ?? "").matchAll(LABEL)) labels[label[1]!] = label[2]!
    samples.push({ name, labels, value })
  }
  return samples
}

/** The sum of the samples named `name` whose labels include `labels`. */
export const valueOf = (
  samples: ReadonlyArray<Sample>,
  name: string,
  labels: Readonly<Record<string, string>> = {}
): number =>
  samples
    .filter((sample) => sample.name === name && Object.entries(labels).every(([k, v]) => sample.labels[k] === v))
    .reduce((sum, sample) => sum + sample.value, 0)

/** Whether a sample named `name` with these labels exists at all. */
export const has = (samples: ReadonlyArray<Sample>, name: string, labels: Readonly<Record<string, string>> = {}) =>
  samples.some((sample) => sample.name === name && Object.entries(labels).every(([k, v]) => sample.labels[k] === v))
