import {
  Alert,
  type AlertStatus,
  type AlertType,
  deriveAlertId,
  SensorId,
  type SilencedBy,
  UserId,
  unnotifiedAlertFields
} from "@dexmon/domain"
import { assert, layer } from "@effect/vitest"
import { Effect, type Layer, Option } from "effect"
import { SqlClient } from "effect/sql"
import { type AlertQuery, AlertStore, encodeCursor } from "../../src/index.ts"

let runCounter = 0
const newRun = () => `a${Date.now().toString(36)}${runCounter++}`
const t0 = Date.parse("2026-11-20T00:00:00.000Z")
const MINUTE = 60_000
const DAY = 86_400_000

/** An episode as the engine writes it: open unless `ended_at` is given, nobody told or acting unless said. */
export const episode = (
  user: string,
  sensor: string,
  type: AlertType,
  start: number,
  fields: Partial<{
    status: AlertStatus
    ended_at: number | null
    glucose_value: number
    extreme_value: number
    last_value: number
    last_reading_at: number
    acknowledged_at: number | null
    acknowledged_by: UserId | null
    snoozed_until: number | null
    notification_count: number
    last_notified_at: number | null
    silenced_by: SilencedBy | null
  }> = {}
) => {
  const value = fields.glucose_value ?? (type === "HIGH" || type === "RISING_FAST" ? 280 : 62)
  return new Alert({
    alert_id: deriveAlertId(sensor, start, type),
    user_id: UserId.make(user),
    sensor_id: SensorId.make(sensor),
    alert_type: type,
    status: fields.status ?? "ACTIVE",
    timestamp: start,
    started_at: start,
    ended_at: fields.ended_at ?? null,
    glucose_value: value,
    extreme_value: fields.extreme_value ?? value,
    last_value: fields.last_value ?? value,
    last_reading_at: fields.last_reading_at ?? start,
    acknowledged_at: fields.acknowledged_at ?? unnotifiedAlertFields.acknowledged_at,
    acknowledged_by: fields.acknowledged_by ?? unnotifiedAlertFields.acknowledged_by,
    snoozed_until: fields.snoozed_until ?? unnotifiedAlertFields.snoozed_until,
    notification_count: fields.notification_count ?? unnotifiedAlertFields.notification_count,
    last_notified_at: fields.last_notified_at ?? unnotifiedAlertFields.last_notified_at,
    silenced_by: fields.silenced_by ?? unnotifiedAlertFields.silenced_by
  })
}

/** Newest first, ties on the start by alert id (descending), as every layer orders a user's episodes. */
const newestFirst = (alerts: ReadonlyArray<Alert>) =>
  alerts.toSorted((a, b) =>
    a.timestamp !== b.timestamp
      ? b.timestamp - a.timestamp
      : a.alert_id < b.alert_id
        ? 1
        : a.alert_id > b.alert_id
          ? -1
          : 0
  )

/** Every page of a query; asserts that each page but the last is full. */
const listAll = (query: Omit<AlertQuery, "cursor">) =>
  Effect.gen(function* () {
    const store = yield* AlertStore
    const seen: Array<Alert> = []
    let cursor: string | undefined
    do {
      const page = yield* store.list({ ...query, cursor })
      seen.push(...page.items)
      cursor = page.next_cursor ?? undefined
      if (cursor !== undefined) assert.strictEqual(page.items.length, query.limit, "a page with a next page is full")
    } while (cursor !== undefined)
    return seen
  })

/** The behaviour every layer of the alert-store port must have. */
export const alertStoreContract = (name: string, storeLayer: Layer.Layer<AlertStore, unknown>) =>
  layer(storeLayer, { timeout: 120_000, excludeTestServices: true })(`AlertStore contract: ${name}`, (it) => {
    it.effect("an episode saved open, then changed and ended, is one row with the latest fields", () =>
      Effect.gen(function* () {
        const store = yield* AlertStore
        const user = newRun()
        const opened = episode(user, `${user}-s`, "LOW", t0, { glucose_value: 66 })
        yield* store.save([opened])
        const query = { user_id: UserId.make(user), from: t0, to: t0 + DAY, limit: 10 }
        assert.deepStrictEqual((yield* store.list(query)).items, [opened])
        assert.deepStrictEqual(yield* store.listOpen(UserId.make(user)), [opened])

        const deeper = episode(user, `${user}-s`, "LOW", t0, {
          glucose_value: 66,
          extreme_value: 58,
          last_value: 61.5,
          last_reading_at: t0 + 10 * MINUTE
        })
        yield* store.save([deeper])
        assert.deepStrictEqual((yield* store.list(query)).items, [deeper])
        assert.deepStrictEqual(yield* store.listOpen(UserId.make(user)), [deeper])

        const ended = episode(user, `${user}-s`, "LOW", t0, {
          status: "RESOLVED",
          ended_at: t0 + 20 * MINUTE,
          glucose_value: 66,
          extreme_value: 58,
          last_value: 85,
          last_reading_at: t0 + 20 * MINUTE
        })
        yield* store.save([ended])
        const page = yield* store.list(query)
        assert.deepStrictEqual(page.items, [ended])
        assert.strictEqual(page.next_cursor, null)
        assert.deepStrictEqual(yield* store.get(UserId.make(user), ended.alert_id), Option.some(ended))
        assert.deepStrictEqual(yield* store.listOpen(UserId.make(user)), [])
      })
    )

    it.effect(
      "an episode's acknowledgement, snooze and notifications read back as saved; a later version replaces them",
      () =>
        Effect.gen(function* () {
          const store = yield* AlertStore
          const user = newRun()
          const query = { user_id: UserId.make(user), from: t0, to: t0 + DAY, limit: 10 }
          const told = episode(user, `${user}-s`, "URGENT_LOW", t0, {
            glucose_value: 52,
            last_reading_at: t0 + 15 * MINUTE,
            acknowledged_at: t0 + 6 * MINUTE,
            acknowledged_by: UserId.make(user),
            snoozed_until: t0 + 60 * MINUTE,
            notification_count: 3,
            last_notified_at: t0 + 10 * MINUTE,
            silenced_by: "QUIET_HOURS"
          })
          yield* store.save([told])
          assert.deepStrictEqual(yield* store.get(UserId.make(user), told.alert_id), Option.some(told))
          assert.deepStrictEqual((yield* store.list(query)).items, [told])
          assert.deepStrictEqual(yield* store.listOpen(UserId.make(user)), [told])

          // Every notification field changes, the snooze to none: a field cleared must clear the stored one.
          const later = episode(user, `${user}-s`, "URGENT_LOW", t0, {
            glucose_value: 52,
            last_reading_at: t0 + 35 * MINUTE,
            acknowledged_at: t0 + 31 * MINUTE,
            acknowledged_by: UserId.make(`${user}-follower`),
            snoozed_until: null,
            notification_count: 5,
            last_notified_at: t0 + 30 * MINUTE,
            silenced_by: "ACKNOWLEDGED"
          })
          yield* store.save([later])
          assert.deepStrictEqual(yield* store.get(UserId.make(user), later.alert_id), Option.some(later))
          assert.deepStrictEqual((yield* store.list(query)).items, [later])
          assert.deepStrictEqual(yield* store.listOpen(UserId.make(user)), [later])
        })
    )

    it.effect("saving the same episodes again changes nothing", () =>
      Effect.gen(function* () {
        const store = yield* AlertStore
        const user = newRun()
        const alerts = Array.from({ length: 10 }, (_, i) =>
          episode(user, `${user}-s`, i % 2 === 0 ? "LOW" : "HIGH", t0 + i * 30 * MINUTE, {
            status: i < 8 ? "RESOLVED" : "ACTIVE",
            ended_at: i < 8 ? t0 + i * 30 * MINUTE + 20 * MINUTE : null
          })
        )
        yield* store.save(alerts)
        yield* store.save(alerts)
        yield* store.save(alerts.slice(3))
        const listed = yield* listAll({ user_id: UserId.make(user), from: t0, to: t0 + DAY, limit: 100 })
        assert.deepStrictEqual(listed, newestFirst(alerts))
        assert.deepStrictEqual(yield* store.listOpen(UserId.make(user)), newestFirst(alerts.slice(8)))
      })
    )

    it.effect("a batch holding an episode twice keeps the later version", () =>
      Effect.gen(function* () {
        const store = yield* AlertStore
        const user = newRun()
        const opened = episode(user, `${user}-s`, "HIGH", t0)
        const ended = episode(user, `${user}-s`, "HIGH", t0, {
          status: "RESOLVED",
          ended_at: t0 + 30 * MINUTE,
          extreme_value: 320,
          last_value: 200,
          last_reading_at: t0 + 30 * MINUTE
        })
        yield* store.save([opened, ended])
        const listed = yield* listAll({ user_id: UserId.make(user), from: t0, to: t0 + DAY, limit: 10 })
        assert.deepStrictEqual(listed, [ended])
        assert.deepStrictEqual(yield* store.listOpen(UserId.make(user)), [])
      })
    )

    it.effect("pages a user's episodes newest first, none skipped or repeated, only that user's", () =>
      Effect.gen(function* () {
        const store = yield* AlertStore
        const user = newRun()
        // Two sensors at the same instants: ties on time are ordered by alert id.
        const alerts = Array.from({ length: 23 }, (_, i) =>
          episode(user, `${user}-s${i % 2}`, i % 3 === 0 ? "HIGH" : "LOW", t0 + Math.floor(i / 2) * 5 * MINUTE)
        )
        yield* store.save(alerts)
        yield* store.save([episode(`${user}-other`, `${user}-x`, "LOW", t0)])
        // Outside the range: one just before `from`, one at `to` (exclusive).
        yield* store.save([episode(user, `${user}-s0`, "LOW", t0 - 1), episode(user, `${user}-s0`, "HIGH", t0 + DAY)])
        const seen = yield* listAll({ user_id: UserId.make(user), from: t0, to: t0 + DAY, limit: 5 })
        assert.deepStrictEqual(seen, newestFirst(alerts))
      })
    )

    it.effect("filters by status and kind, in full pages, none skipped or repeated", () =>
      Effect.gen(function* () {
        const store = yield* AlertStore
        const user = newRun()
        const types: ReadonlyArray<AlertType> = ["URGENT_LOW", "LOW", "HIGH", "URGENT_LOW_SOON", "NO_DATA"]
        const statuses: ReadonlyArray<AlertStatus> = ["RESOLVED", "ACTIVE", "RESOLVED", "BACKFILLED"]
        // 90 episodes on three sensors, several at each instant; the matches of each filter are scattered.
        const alerts = Array.from({ length: 90 }, (_, i) => {
          const status = statuses[(i * 7) % statuses.length]!
          return episode(user, `${user}-s${i % 3}`, types[(i * 3) % types.length]!, t0 + Math.floor(i / 3) * MINUTE, {
            status,
            ended_at: status === "ACTIVE" ? null : t0 + Math.floor(i / 3) * MINUTE + 40 * MINUTE
          })
        })
        yield* store.save(alerts)
        const filters: ReadonlyArray<{ status?: AlertStatus; alert_type?: AlertType }> = [
          { status: "RESOLVED" },
          { status: "ACTIVE" },
          { status: "BACKFILLED" },
          { alert_type: "LOW" },
          { alert_type: "NO_DATA" },
          { status: "RESOLVED", alert_type: "HIGH" },
          { status: "ACTIVE", alert_type: "RISING_FAST" }
        ]
        for (const filter of filters) {
          const expected = newestFirst(
            alerts.filter(
              (a) =>
                (filter.status === undefined || a.status === filter.status) &&
                (filter.alert_type === undefined || a.alert_type === filter.alert_type)
            )
          )
          for (const limit of [1, 4, 7]) {
            const seen = yield* listAll({ user_id: UserId.make(user), from: t0, to: t0 + DAY, limit, ...filter })
            assert.deepStrictEqual(
              seen.map((a) => a.alert_id),
              expected.map((a) => a.alert_id),
              `${JSON.stringify(filter)}, pages of ${limit}`
            )
          }
        }
        // A narrower time range still filters and pages.
        const window = { from: t0 + 5 * MINUTE, to: t0 + 20 * MINUTE }
        const seen = yield* listAll({ user_id: UserId.make(user), ...window, limit: 3, status: "RESOLVED" })
        assert.deepStrictEqual(
          seen.map((a) => a.alert_id),
          newestFirst(
            alerts.filter((a) => a.status === "RESOLVED" && a.timestamp >= window.from && a.timestamp < window.to)
          ).map((a) => a.alert_id)
        )
      })
    )

    it.effect("gets an episode by id, never another user's", () =>
      Effect.gen(function* () {
        const store = yield* AlertStore
        const user = newRun()
        const mine = episode(user, `${user}-s`, "URGENT_LOW", t0, { glucose_value: 50 })
        const theirs = episode(`${user}-other`, `${user}-t`, "LOW", t0)
        yield* store.save([mine, theirs])
        assert.deepStrictEqual(yield* store.get(UserId.make(user), mine.alert_id), Option.some(mine))
        assert.deepStrictEqual(yield* store.get(UserId.make(user), theirs.alert_id), Option.none())
        assert.deepStrictEqual(yield* store.get(UserId.make(`${user}-other`), mine.alert_id), Option.none())
        const unknown = deriveAlertId(`${user}-s`, t0 + 1, "LOW")
        assert.deepStrictEqual(yield* store.get(UserId.make(user), unknown), Option.none())
      })
    )

    it.effect("lists exactly the open episodes, newest first; an ended one leaves the list", () =>
      Effect.gen(function* () {
        const store = yield* AlertStore
        const user = newRun()
        const open = [
          episode(user, `${user}-s1`, "LOW", t0 + 10 * MINUTE),
          episode(user, `${user}-s1`, "URGENT_LOW_SOON", t0 + 5 * MINUTE),
          episode(user, `${user}-s2`, "NO_DATA", t0 + 30 * MINUTE, { glucose_value: 120 }),
          episode(user, `${user}-s2`, "HIGH", t0 - 2 * DAY, { status: "BACKFILLED" })
        ]
        const ended = [
          episode(user, `${user}-s1`, "HIGH", t0, { status: "RESOLVED", ended_at: t0 + MINUTE }),
          episode(user, `${user}-s2`, "LOW", t0 - DAY, { status: "BACKFILLED", ended_at: t0 - DAY + MINUTE })
        ]
        yield* store.save([...open, ...ended, episode(`${user}-other`, `${user}-x`, "LOW", t0)])
        assert.deepStrictEqual(yield* store.listOpen(UserId.make(user)), newestFirst(open))

        const low = open[0]!
        const lowEnded = episode(user, `${user}-s1`, "LOW", low.timestamp, {
          status: "RESOLVED",
          ended_at: low.timestamp + 15 * MINUTE,
          last_value: 90,
          last_reading_at: low.timestamp + 15 * MINUTE
        })
        yield* store.save([lowEnded])
        assert.deepStrictEqual(yield* store.listOpen(UserId.make(user)), newestFirst(open.slice(1)))
        assert.deepStrictEqual(yield* store.get(UserId.make(user), low.alert_id), Option.some(lowEnded))
        assert.deepStrictEqual(yield* store.listOpen(UserId.make(`${user}-nobody`)), [])
        yield* store.ping
      })
    )

    it.effect("refuses a cursor it did not issue", () =>
      Effect.gen(function* () {
        const store = yield* AlertStore
        const query = { user_id: UserId.make("u"), from: t0, to: t0 + 1, limit: 5 }
        for (const cursor of ["bm9wZQ", encodeCursor([t0, "not-a-uuid"]), encodeCursor(["x", "y"])]) {
          const error = yield* store.list({ ...query, cursor }).pipe(Effect.flip)
          assert.strictEqual(error._tag, "InvalidCursor", cursor)
        }
      })
    )
  })

/** An alert row as the seed wrote it (status `SENT`, no episode columns), to insert with raw SQL or CQL. */
export const legacyAlertRow = (run: string) => {
  const timestamp = t0 + 7 * MINUTE
  return {
    user_id: UserId.make(`${run}-legacy`),
    sensor_id: SensorId.make(`${run}-legacy-s`),
    alert_id: deriveAlertId(`${run}-legacy-s`, timestamp, "LOW"),
    alert_type: "LOW" as const,
    timestamp,
    glucose_value: 64,
    status: "SENT"
  }
}

/** Writes a `legacyAlertRow` into PostgreSQL's `glucose_alerts` in the seed's columns only, as the seed did. */
export const insertLegacyAlertRowSql = (legacy: ReturnType<typeof legacyAlertRow>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`INSERT INTO glucose_alerts (user_id, "timestamp", alert_id, sensor_id, glucose_value, alert_type, status)
      VALUES (${legacy.user_id}, ${new Date(legacy.timestamp).toISOString()}::timestamptz, ${legacy.alert_id}::uuid,
        ${legacy.sensor_id}, ${legacy.glucose_value}, ${legacy.alert_type}, ${legacy.status})`
  })

/**
 * How a row of `legacyAlertRow` reads back from every layer: an ended episode
 * of its one reading, `RESOLVED` (also to the status filter), nothing recorded
 * about notifications (`unnotifiedAlertFields`); and a new episode that derives
 * the same id replaces it.
 */
export const assertLegacyAlertReadsBack = (legacy: ReturnType<typeof legacyAlertRow>) =>
  Effect.gen(function* () {
    const store = yield* AlertStore
    const expected = new Alert({
      alert_id: legacy.alert_id,
      user_id: legacy.user_id,
      sensor_id: legacy.sensor_id,
      alert_type: legacy.alert_type,
      status: "RESOLVED",
      timestamp: legacy.timestamp,
      started_at: legacy.timestamp,
      ended_at: legacy.timestamp,
      glucose_value: legacy.glucose_value,
      extreme_value: legacy.glucose_value,
      last_value: legacy.glucose_value,
      last_reading_at: legacy.timestamp,
      ...unnotifiedAlertFields
    })
    const query = { user_id: legacy.user_id, from: t0, to: t0 + DAY, limit: 10 }
    assert.deepStrictEqual((yield* store.list(query)).items, [expected])
    assert.deepStrictEqual((yield* store.list({ ...query, status: "RESOLVED" })).items, [expected])
    assert.deepStrictEqual((yield* store.list({ ...query, status: "ACTIVE" })).items, [])
    assert.deepStrictEqual((yield* store.list({ ...query, alert_type: "LOW" })).items, [expected])
    assert.deepStrictEqual(yield* store.get(legacy.user_id, legacy.alert_id), Option.some(expected))
    assert.deepStrictEqual(yield* store.listOpen(legacy.user_id), [])

    const reopened = episode(legacy.user_id, legacy.sensor_id, "LOW", legacy.timestamp, {
      glucose_value: legacy.glucose_value,
      extreme_value: 57
    })
    yield* store.save([reopened])
    assert.deepStrictEqual((yield* store.list(query)).items, [reopened])
    assert.deepStrictEqual(yield* store.listOpen(legacy.user_id), [reopened])
  })
