import type { NightscoutEntry, NightscoutStatus, ServiceUnavailable } from "@dexmon/api"
import { ReadingsQuery } from "@dexmon/archive"
import type { Reading, UserId } from "@dexmon/domain"
import { previousSensorReading, readPathUnavailable, UserAlertSettings } from "@dexmon/gateway"
import { type TimedGlucose, TREND_WINDOW_MS } from "@dexmon/statistics"
import { Clock, Context, Effect, Layer } from "effect"
import { type EntriesFilter, nightscoutEntryOf } from "./EntriesOut.ts"

const HOUR = 3_600_000

/**
 * The spans an entries read looks back over, newest first, each wider than the last: a follower asking for the
 * newest reading every minute reads an hour, not four days.
 */
const LOOKBACK_STEPS = [HOUR, 6 * HOUR, 24 * HOUR, 4 * 24 * HOUR, 30 * 24 * HOUR, 365 * 24 * HOUR]

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
          // Read back from the end in widening steps until `count` match or the range is read: `seen` holds every
          // reading of [start, to), oldest first, so a reading's previous one is usually among them.
          let seen: ReadonlyArray<Reading> = []
          let start = filter.to
          for (const step of LOOKBACK_STEPS) {
            if (start <= filter.from) break
            const next = Math.max(filter.from, filter.to - step)
            seen = [...(yield* readAll(userId, next, start)), ...seen]
            start = next
            if (seen.filter(matches).length >= count) break
          }
          if (start > filter.from) seen = [...(yield* readAll(userId, filter.from, start)), ...seen]
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
              lastModified = Math.max(lastModified ?? 0, reading.updated_at)
            }
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
