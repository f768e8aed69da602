import { type ChildProcess, spawn } from "node:child_process"
import { createRequire } from "node:module"
import { DexMonClient } from "@dexmon/sdk"
import { eventually, makeCertificateAuthority, makeDexcomShare, makeLibreLinkUp, tempDir } from "@dexmon/testing"
import { assert, layer } from "@effect/vitest"
import { Clock, Effect } from "effect"
import { apiSecretOf, asUser, readingsOf, SharedDexMon } from "./support/SharedDexMon.ts"

const MINUTE = 60_000
const require = createRequire(import.meta.url)

const urgentLowsOf = (user: string, from: number, to: number) =>
  asUser(
    user,
    Effect.flatMap(DexMonClient, (client) => client.alerts.list({ query: { from, to, alert_type: "URGENT_LOW" } }))
  )

const hasExited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null

/**
 * An uploader from npm run as its own Node process, as its users run it (`node index.js`, or its CLI), on an
 * environment of only what it is told: none of the runner's variables reach it. Its output is kept for the
 * failure messages; it is killed with the scope (neither uploader stops on its own).
 */
const runUploader = Effect.fn("runUploader")(function* (
  name: string,
  args: ReadonlyArray<string>,
  env: Record<string, string>
) {
  const output: Array<string> = []
  const child = yield* Effect.acquireRelease(
    Effect.sync(() => {
      const proc = spawn(process.execPath, args, {
        env: { PATH: process.env.PATH ?? "", ...env },
        stdio: ["ignore", "pipe", "pipe"]
      })
      proc.stdout.on("data", (chunk) => output.push(String(chunk)))
      proc.stderr.on("data", (chunk) => output.push(String(chunk)))
      return proc
    }),
    (proc) =>
      Effect.callback<void>((resume) => {
        if (hasExited(proc)) return resume(Effect.void)
        proc.once("exit", () => resume(Effect.void))
        proc.kill("SIGKILL")
      })
  )
  const tail = () => output.join("").slice(-6000)
  return {
    name,
    tail,
    /**
     * `query`, unless the uploader has died: then the test fails at once with what the uploader printed,
     * instead of polling to the end.
     */
    whileRunning: <A, E, R>(query: Effect.Effect<A, E, R>) =>
      Effect.suspend(() =>
        hasExited(child)
          ? Effect.die(new Error(`${name} exited (${child.exitCode ?? child.signalCode}):\n${tail()}`))
          : query
      )
  }
})

type Uploader = Effect.Success<ReturnType<typeof runUploader>>

/**
 * The series both tests serve: six readings five minutes apart, the newest a minute ago, falling from 120 to
 * an urgent low of 50. SharedDexMon's own trends from the rates between them (mg/dL per minute): none for the first
 * (nothing earlier within 15 minutes), then -0.4, -1.6, -2.4, -4.4 and -5.2.
 */
const SERIES = [
  { value: 120, shareTrend: "Flat", arrow: 3, dexmonTrend: "NotComputable" },
  { value: 118, shareTrend: "Flat", arrow: 3, dexmonTrend: "Flat" },
  { value: 110, shareTrend: "FortyFiveDown", arrow: 2, dexmonTrend: "FortyFiveDown" },
  { value: 98, shareTrend: "SingleDown", arrow: 2, dexmonTrend: "SingleDown" },
  { value: 76, shareTrend: "DoubleDown", arrow: 1, dexmonTrend: "DoubleDown" },
  { value: 50, shareTrend: "DoubleDown", arrow: 1, dexmonTrend: "DoubleDown" }
] as const

/** The series' times: whole minutes (LibreView keeps whole seconds), the newest a minute before `now`. */
const seriesTimes = (now: number) => {
  const newest = Math.floor(now / MINUTE) * MINUTE - MINUTE
  return SERIES.map((_, index) => newest - (SERIES.length - 1 - index) * 5 * MINUTE)
}

/** Polls until all six readings of the series are in SharedDexMon, then checks values, times, source, sensor, trend. */
const expectSeriesStored = Effect.fnUntraced(function* (
  user: string,
  times: ReadonlyArray<number>,
  uploader: Uploader
) {
  const first = times[0]!
  const last = times.at(-1)!
  const stored = yield* eventually(
    uploader.whileRunning(readingsOf(user, first - MINUTE, last + MINUTE)),
    (page) => page.items.length >= SERIES.length,
    { what: `the six readings ${uploader.name} uploaded, in SharedDexMon`, every: "250 millis", times: 120 }
  ).pipe(
    Effect.catchTag("EventuallyTimeout", (timeout) =>
      Effect.die(new Error(`${timeout.message}\n${uploader.name} printed:\n${uploader.tail()}`))
    )
  )
  assert.deepStrictEqual(
    stored.items.map((reading) => [reading.timestamp, reading.glucose_value, reading.source]),
    SERIES.map((step, index) => [times[index]!, step.value, "SENSOR"])
  )
  for (const reading of stored.items) assert.match(reading.sensor_id, /^ns-/)
  assert.deepStrictEqual(
    stored.items.map((reading) => reading.trend),
    SERIES.map((step) => step.dexmonTrend)
  )
  const episodes = yield* eventually(
    urgentLowsOf(user, first - MINUTE, last + 60 * MINUTE),
    (page) => page.items.length >= 1,
    { what: "the urgent low raised", every: "250 millis", times: 120 }
  )
  assert.strictEqual(episodes.items.length, 1, JSON.stringify(episodes.items))
})

layer(SharedDexMon.layer, { timeout: "180 seconds", excludeTestServices: true })(
  "Nightscout uploaders from npm, pointed at SharedDexMon",
  (it) => {
    it.effect(
      "share2nightscout-bridge 0.2.12 logs in to a Dexcom Share stand-in, reads the series and uploads it: SharedDexMon stores it with its own trend and raises one urgent low",
      () =>
        Effect.gen(function* () {
          const user = "ns-share-bridge-user"
          const apiSecret = (yield* apiSecretOf(user)).api_secret!
          const { baseUrl } = yield* SharedDexMon
          const times = seriesTimes(yield* Clock.currentTimeMillis)
          const authority = yield* makeCertificateAuthority("share")
          const share = yield* makeDexcomShare({
            accountName: "bridge-follower",
            password: "share-password-1",
            readings: SERIES.map((step, index) => ({
              timestamp: times[index]!,
              value: step.value,
              trend: step.shareTrend
            })),
            certificate: yield* authority.issue("127.0.0.1", ["127.0.0.1"])
          })
          const bridge = yield* runUploader("share2nightscout-bridge", [require.resolve("share2nightscout-bridge")], {
            API_SECRET: apiSecret,
            NS: baseUrl,
            // The bridge takes anything with a dot as the Share host and always speaks HTTPS to it.
            BRIDGE_SERVER: share.host,
            DEXCOM_ACCOUNT_NAME: "bridge-follower",
            DEXCOM_PASSWORD: "share-password-1",
            // Its first poll asks for `firstFetchCount` readings; the later ones (every SHARE_INTERVAL, at least a
            // minute) for `maxCount`. The first poll is made at start.
            firstFetchCount: "12",
            maxCount: "1",
            SHARE_INTERVAL: "60000",
            // The bridge turns certificate checks off itself (`rejectUnauthorized: false`); trusted all the same.
            NODE_EXTRA_CA_CERTS: authority.certificateFile
          })

          yield* expectSeriesStored(user, times, bridge)

          const calls = share.requests().map((request) => [request.method, request.path, request.status])
          assert.deepStrictEqual(calls.slice(0, 3), [
            ["POST", "/ShareWebServices/Services/General/AuthenticatePublisherAccount", 200],
            ["POST", "/ShareWebServices/Services/General/LoginPublisherAccountById", 200],
            ["POST", "/ShareWebServices/Services/Publisher/ReadPublisherLatestGlucoseValues", 200]
          ])
          assert.strictEqual(share.requests()[2]!.query.maxCount, "12", bridge.tail())
        })
    )

    it.effect(
      "nightscout-connect 0.0.12 logs in to a LibreLinkUp stand-in, reads the patient's graph and uploads it: SharedDexMon stores it with its own trend and raises one urgent low",
      () =>
        Effect.gen(function* () {
          const user = "ns-connect-linkup-user"
          const apiSecret = (yield* apiSecretOf(user)).api_secret!
          const { baseUrl } = yield* SharedDexMon
          const times = seriesTimes(yield* Clock.currentTimeMillis)
          // nightscout-connect uploads only what is newer than the site's newest entry (GET entries.json?count=1),
          // and on a site without entries it keeps none of LibreLinkUp's graph (`undefined < date` is false): it
          // works for a site with history, as this user's is, with a reading an hour before the series.
          yield* asUser(
            user,
            Effect.flatMap(DexMonClient, (client) =>
              client.ingestion.postSensor({
                payload: {
                  readings: [
                    { sensor_id: "libre-earlier" as never, timestamp: times[0]! - 60 * MINUTE, glucose_value: 131 }
                  ]
                }
              })
            )
          )
          yield* eventually(
            readingsOf(user, times[0]! - 61 * MINUTE, times[0]! - 59 * MINUTE),
            (page) => page.items.length === 1,
            { what: "the earlier reading stored" }
          )
          const authority = yield* makeCertificateAuthority("linkup")
          const linkUp = yield* makeLibreLinkUp({
            email: "follower@example.test",
            password: "linkup-password-1",
            readings: SERIES.map((step, index) => ({
              timestamp: times[index]!,
              value: step.value,
              trendArrow: step.arrow
            })),
            certificate: yield* authority.issue("127.0.0.1", ["127.0.0.1"]),
            // The phone's Timestamp an hour off FactoryTimestamp: right times in SharedDexMon mean the UTC one was read.
            patientUtcOffsetMinutes: 60
          })
          const har = yield* tempDir("nightscout-connect-har")
          // `capture <dir>` is the CLI command that passes the source's settings (CONNECT_*, read by yargs) to the
          // source: `forever` passes only its kind, so it would poll the real api-eu.libreview.io. It runs the same
          // poll loop, and also writes each poll's requests to <dir> as HAR files.
          const connect = yield* runUploader(
            "nightscout-connect",
            [require.resolve("nightscout-connect/bin/nightscout-connect"), "capture", har],
            {
              CONNECT_SOURCE: "linkup",
              CONNECT_LINK_UP_SERVER: linkUp.host,
              CONNECT_LINK_UP_USERNAME: "follower@example.test",
              CONNECT_LINK_UP_PASSWORD: "linkup-password-1",
              CONNECT_NIGHTSCOUT_ENDPOINT: baseUrl,
              CONNECT_API_SECRET: apiSecret,
              // axios checks the stand-in's certificate: the test's CA is trusted, nothing is switched off.
              NODE_EXTRA_CA_CERTS: authority.certificateFile,
              // It reads FactoryTimestamp (UTC, written without a zone) as local time and takes the zone's offset
              // off again, which is an hour out next to a daylight-saving change: in UTC no run can meet one.
              TZ: "UTC"
            }
          )

          yield* expectSeriesStored(user, times, connect)

          const calls = linkUp.requests().map((request) => [request.method, request.path, request.status])
          assert.deepStrictEqual(calls.slice(0, 3), [
            ["POST", "/llu/auth/login", 200],
            ["GET", "/llu/connections", 200],
            ["GET", `/llu/connections/${linkUp.patientId}/graph`, 200]
          ])
        })
    )
  }
)
