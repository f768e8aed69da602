import type { NightscoutEntry, NightscoutStatus, ServiceUnavailable } from "@dexmon/api"
import { ReadingsQuery } from "@dexmon/archive"
import type { Reading, UserId } from "@dexmon/domain"
import { previousSensorReading, readPathUnavailable, UserAlertSettings } from "@dexmon/gateway"
import { type TimedGlucose, TREND_WINDOW_MS } from "@dexmon/statistics"
import { Clock, Context, Effect, Layer } from "effect"
import { type EntriesFilter, nightscoutEntryOf } from "./EntriesOut.ts"

const HOUR = 3_600_000

const DAY = 24 * HOUR

/**
 * How far back from its end (or now, if sooner) an entries read looks, in steps, each read only when the ones
 * before found fewer than `count` matches: a follower asking for the newest reading every minute reads an hour,
 * not four days. No step adds more than 15 days (21,600 one-minute readings), and a read looks back 90 days at
 * most: a client reaches further with date bounds.
 */
const LOOKBACK_STEPS = [
  HOUR,
  6 * HOUR,
  DAY,
  4 * DAY,
  10 * DAY,
  20 * DAY,
  30 * DAY,
  45 * DAY,
  60 * DAY,
  75 * DAY,
  90 * DAY
]

/** After this many readings a read stops looking further back, and serves what matched: a bound on its memory. */
export const MAX_SCANNED_READINGS = 50_000

/** The Nightscout version DexMon answers as: the API it speaks is Nightscout 15's v1. */
export const NIGHTSCOUT_VERSION = "15.0.2-dexmon"

/** The boundary DexMon's statistics call very high; Nightscout's `bgHigh` (its urgent high). */
const VERY_HIGH = 250

/**
 * What Nightscout's followers read: entries newest first with DexMon's trend, and the status with the user's
 * thresholds. A user's entries are the same readings DexMon's own API serves, hot and archived.
 */
export class NightscoutReads extends Context.Service<
  NightscoutReads,
  {
    /** The newest `count` readings of the filter, newest first, and the latest `updated_at` among them. */
    readonly entries: (
      userId: UserId,
      filter: EntriesFilter,
      count: number
    ) => Effect.Effect<
      { readonly entries: ReadonlyArray<NightscoutEntry>; readonly lastModified: number | undefined },
      ServiceUnavailable
    >
    readonly status: (userId: UserId) => Effect.Effect<NightscoutStatus, ServiceUnavailable>
  }
>()("dexmon/nightscout/NightscoutReads") {
  static readonly layer = Layer.effect(
    NightscoutReads,
    Effect.gen(function* () {
      const readings = yield* ReadingsQuery
      const settings = yield* UserAlertSettings

      /** Every reading of the user in `[from, to)`, oldest first. */
      const readAll = Effect.fnUntraced(function* (userId: UserId, from: number, to: number) {
        const all: Array<Reading> = []
        let cursor: string | undefined
        do {
          const page = yield* readings.list({ user_id: userId, from, to, limit: 1000, cursor })
          all.push(...page.items)
          cursor = page.next_cursor ?? undefined
        } while (cursor !== undefined)
        return all
      })

      const entries = Effect.fn("NightscoutReads.entries")(
        function* (userId: UserId, filter: EntriesFilter, count: number) {
          const matches = (reading: Reading) =>
            filter.types.has(reading.source === "SENSOR" ? "sgv" : "mbg") && filter.matchesValue(reading.glucose_value)
          // Read back from the end in widening steps until `count` match, the range is read or the scan is spent:
          // `seen` holds every reading of [start, to), oldest first, so a reading's previous one is usually there.
          const now = yield* Clock.currentTimeMillis
          const anchor = Math.min(filter.to, now)
          const pieces: Array<ReadonlyArray<Reading>> = []
          let start = filter.to
          let matched = 0
          let scanned = 0
          for (const step of LOOKBACK_STEPS) {
            if (start <= filter.from || matched >= count || scanned >= MAX_SCANNED_READINGS) break
            const next = Math.max(filter.from, anchor - step)
            if (next >= start) continue
            const piece = yield* readAll(userId, next, start)
            pieces.unshift(piece)
            matched += piece.filter(matches).length
            scanned += piece.length
            start = next
          }
          const seen = pieces.flat()
          const chosen = new Set(seen.filter(matches).slice(-count))
          const lastBySensor = new Map<string, TimedGlucose>()
          const served: Array<NightscoutEntry> = []
          let lastModified: number | undefined
          for (const reading of seen) {
            if (chosen.has(reading)) {
              const previous =
                reading.source !== "SENSOR"
                  ? undefined
                  : lastBySensor.has(reading.sensor_id)
                    ? lastBySensor.get(reading.sensor_id)
                    : // The first of its sensor in what was read: its previous one may lie before it.
                      reading.timestamp - start < TREND_WINDOW_MS
                      ? yield* previousSensorReading(readings, userId, reading)
                      : undefined
              served.push(nightscoutEntryOf(reading, previous))
            }
            // A change to any reading read, a served one's previous reading included, changes what is served.
            lastModified = Math.max(lastModified ?? 0, reading.updated_at)
            if (reading.source === "SENSOR") {
              lastBySensor.set(reading.sensor_id, { timestamp: reading.timestamp, value: reading.glucose_value })
            }
          }
          return { entries: served.reverse(), lastModified }
        },
        Effect.catchTags({ ...readPathUnavailable, InvalidCursor: Effect.die })
      )

      const status = Effect.fn("NightscoutReads.status")(function* (userId: UserId) {
        const now = yield* Clock.currentTimeMillis
        const { settings: user } = yield* settings.read(userId)
        return {
          status: "ok" as const,
          name: "DexMon",
          version: NIGHTSCOUT_VERSION,
          serverTime: new Date(now).toISOString(),
          serverTimeEpoch: now,
          apiEnabled: true,
          careportalEnabled: false,
          boluscalcEnabled: false,
          settings: {
            units: "mg/dl" as const,
            timeFormat: 24,
            enable: [],
            thresholds: {
              bgHigh: Math.max(VERY_HIGH, user.high.threshold),
              bgTargetTop: user.high.threshold,
              bgTargetBottom: user.low.threshold,
              bgLow: user.urgent_low.threshold
            }
          },
          extendedSettings: {},
          authorized: null
        }
      })

      return NightscoutReads.of({ entries, status })
    })
  )
}
