// The kcat helper the integration tests read topics with, against the harness's broker: what the project's
// Kafka event log appends, an independent client reads back byte for byte; and the harness's fetch of kcat
// itself, for machines without it (CI).
import { spawnSync } from "node:child_process"
import { readdirSync } from "node:fs"
import { join } from "node:path"
import { EventLog, KafkaEventLog, Topics } from "@dexmon/ports"
import { type KcatRecord, readTopicWithKcat, requiredServer, tempDir } from "@dexmon/testing"
import { assert, layer } from "@effect/vitest"
import { ConfigProvider, Effect, Layer } from "effect"
import { kcatVersion, unpackedKcat } from "../../../infra/kcat/Kcat.ts"

const brokers = requiredServer("KAFKA_BROKERS")
const encoder = new TextEncoder()
// Log times an hour back: a fixed date ages past the topic's retention (the broker's default, 7 days) and the
// broker deletes the records before kcat reads them, so the reads came back empty once that date was a week old.
const t0 = Math.floor(Date.now() / 60_000) * 60_000 - 3_600_000

const kafka = KafkaEventLog.layer.pipe(
  Layer.provideMerge(Layer.succeed(Topics, Topics.make(2, `kcat-${Date.now().toString(36)}.`))),
  Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv()))
)

/** Three readings of two sensors, with headers (one with text that is not ASCII) and log times of their own. */
const appended = [
  { key: "sensor-a", value: '{"glucose_value":52}', headers: { "dexmon-schema": "glucose-event", "x-n": "1" } },
  { key: "sensor-b", value: '{"glucose_value":180}', headers: { "dexmon-schema": "glucose-event", "x-n": "2" } },
  { key: "sensor-a", value: '{"glucose_value":49,"note":"café"}', headers: { "x-origin": "Zürich", "x-n": "3" } }
]

layer(kafka, { timeout: 120_000, excludeTestServices: true })(`kcat against Kafka at ${brokers}`, (it) => {
  it.effect("reads back the keys, values, headers, partitions, offsets and log times the event log appended", () =>
    Effect.gen(function* () {
      const log = yield* EventLog
      const { names } = yield* Topics
      const positions = yield* log.append(
        names.events,
        appended.map((record, i) => ({ ...record, value: encoder.encode(record.value), timestamp: t0 + i }))
      )
      const read = yield* readTopicWithKcat({ brokers, topic: names.events, count: 3 })
      const byPosition = (a: KcatRecord, b: KcatRecord) => a.partition - b.partition || a.offset - b.offset
      assert.deepStrictEqual(
        read.toSorted(byPosition),
        appended
          .map(
            (record, i): KcatRecord => ({
              key: record.key,
              value: record.value,
              headers: record.headers,
              partition: positions[i]!.partition,
              offset: positions[i]!.offset,
              timestamp: t0 + i
            })
          )
          .toSorted(byPosition)
      )

      // With a key, only that key's records, in their partition's order.
      const sensorA = yield* readTopicWithKcat({ brokers, topic: names.events, key: "sensor-a", count: 2 })
      assert.deepStrictEqual(
        sensorA.map((record) => record.value),
        [appended[0]!.value, appended[2]!.value]
      )
    })
  )

  it.effect("fails loudly with what it saw when fewer records than expected arrive in time", () =>
    Effect.gen(function* () {
      const { names } = yield* Topics
      const error = yield* readTopicWithKcat({ brokers, topic: names.events, count: 4, timeout: "2 seconds" }).pipe(
        Effect.flip
      )
      assert.strictEqual(error._tag, "KcatError")
      assert.include(error.message, `kcat read 3 of the 4 records expected in ${names.events}`)
      assert.include(error.message, 'key="sensor-b" value="{\\"glucose_value\\":180}"')
    })
  )

  it.effect("fails with kcat's own error for a topic that does not exist", () =>
    Effect.gen(function* () {
      const { names } = yield* Topics
      const missing = `${names.events}.missing`
      const error = yield* readTopicWithKcat({ brokers, topic: missing, count: 1, timeout: "2 seconds" }).pipe(
        Effect.flip
      )
      assert.include(error.message, `kcat read 0 of the 1 records expected in ${missing}`)
      assert.include(error.message, "Unknown topic or partition")
    })
  )
})

layer(Layer.empty, { timeout: 120_000, excludeTestServices: true })("the harness's kcat fetch", (it) => {
  // Into an empty folder, whether or not the machine has kcat: the path a clean CI machine takes on first
  // use. Twice at once, as two test processes may: both answer the same working kcat, one copy is kept.
  it.effect("fetches kcat with apt-get download and dpkg -x, twice at once into the same empty folder", () =>
    Effect.gen(function* () {
      const parent = yield* tempDir("kcat")
      const versionDirectory = join(parent, kcatVersion())
      const [first, second] = yield* Effect.promise(() =>
        Promise.all([unpackedKcat(versionDirectory, kcatVersion()), unpackedKcat(versionDirectory, kcatVersion())])
      )
      assert.isTrue(first!.downloaded && second!.downloaded)
      assert.strictEqual(first!.command, join(versionDirectory, "root", "usr", "bin", "kcat"))
      assert.strictEqual(second!.command, first!.command)
      assert.match(first!.version, new RegExp(`^kcat ${kcatVersion().replaceAll(".", "\\.")}, librdkafka `))
      assert.deepStrictEqual(readdirSync(parent), [kcatVersion()])

      // The script on PATH needs no environment of its own; a second call finds the copy and fetches nothing.
      const viaPath = spawnSync("kcat", ["-V"], {
        encoding: "utf8",
        env: { ...process.env, PATH: `${first!.binDirectory}:${process.env.PATH}` }
      })
      assert.strictEqual(viaPath.status, 0, viaPath.stderr)
      assert.include(viaPath.stdout, `Version ${kcatVersion()} `)
      const again = yield* Effect.promise(() => unpackedKcat(versionDirectory, kcatVersion()))
      assert.deepStrictEqual(again, { ...first!, downloaded: false })
    }).pipe(Effect.scoped)
  )
})
