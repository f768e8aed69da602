import type { Alert, AlertId, UserId } from "@dexmon/domain"
import type cassandra from "cassandra-driver"
import { Effect, Layer, Option, Schema } from "effect"
import { type AlertQuery, AlertStore, AlertStoreError } from "./AlertStore.ts"
import { CassandraSession, type CqlStatement, isResponseError, responseErrorCodes } from "./CassandraSession.ts"
import {
  decodeAlertCursor,
  decodeStoredAlert,
  encodeAlertCursor,
  latestPerEpisode,
  newestFirst,
  storedStatuses
} from "./StoredAlert.ts"

/** The episode columns added to the seed's `glucose_alerts`, and their CQL types. */
const episodeColumns = {
  started_at: "timestamp",
  ended_at: "timestamp",
  extreme_value: "double",
  last_value: "double",
  last_reading_at: "timestamp"
} as const

/** The notification columns, and their CQL types: added to `glucose_alerts` and `glucose_alerts_open` where an earlier version made them without. */
const notificationColumns = {
  acknowledged_at: "timestamp",
  acknowledged_by: "text",
  snoozed_until: "timestamp",
  notification_count: "int",
  last_notified_at: "timestamp",
  silenced_by: "text"
} as const

const AlertRow = Schema.Struct({
  user_id: Schema.String,
  timestamp: Schema.Date,
  alert_id: Schema.Unknown,
  sensor_id: Schema.String,
  glucose_value: Schema.Number,
  alert_type: Schema.String,
  status: Schema.String,
  started_at: Schema.NullOr(Schema.Date),
  ended_at: Schema.optional(Schema.NullOr(Schema.Date)),
  extreme_value: Schema.NullOr(Schema.Number),
  last_value: Schema.NullOr(Schema.Number),
  last_reading_at: Schema.NullOr(Schema.Date),
  acknowledged_at: Schema.NullOr(Schema.Date),
  acknowledged_by: Schema.NullOr(Schema.String),
  snoozed_until: Schema.NullOr(Schema.Date),
  notification_count: Schema.NullOr(Schema.Number),
  last_notified_at: Schema.NullOr(Schema.Date),
  silenced_by: Schema.NullOr(Schema.String)
})

const millisOrNull = (date: Date | null | undefined) => (date === null || date === undefined ? null : date.getTime())
const dateOrNull = (millis: number | null) => (millis === null ? null : new Date(millis))

/** The rows the migration walks at a time when it fills the by-id table from older rows. */
const BACKFILL_PAGE = 1_000
/** The name the by-id backfill is recorded under once it completed, so a later start skips it. */
const BACKFILL_BY_ID = "0002_glucose_alerts_by_id_backfill"

/**
 * The alert store on Apache Cassandra. `glucose_alerts` (the seed's table, with
 * the episode columns added) is partitioned by user, clustered newest first;
 * beside it `glucose_alerts_by_id` finds an episode from its id alone, and
 * `glucose_alerts_open` holds each user's open episodes (inserted while open,
 * its exact row deleted when the episode ends), so neither `get` nor
 * `listOpen` reads a user's history. An episode's rows are written in one
 * logged batch, prepared, idempotent and at the configured consistency; `save`
 * returns once every batch is acknowledged.
 */
export const make = Effect.gen(function* () {
  const session = yield* CassandraSession
  const { config } = session
  const { types } = session.driver
  const { batch, failWith, run, runAll } = session.runner((fields) => new AlertStoreError(fields))
  const keyspace = config.keyspace
  const table = `${keyspace}.glucose_alerts`
  const byIdTable = `${keyspace}.glucose_alerts_by_id`
  const openTable = `${keyspace}.glucose_alerts_open`
  const migrationsTable = `${keyspace}.dexmon_migrations_alerts`

  const insertById = `INSERT INTO ${byIdTable} (alert_id, user_id, timestamp) VALUES (?, ?, ?)`

  // A keyspace made by an earlier version is migrated in place, keeping every row it holds.
  const presentColumns = (tableName: string) =>
    run("migrate", "SELECT column_name FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ?", [
      keyspace.toLowerCase(),
      tableName
    ]).pipe(Effect.map((result) => new Set(result.rows.map((row) => String(row.column_name)))))

  /**
   * Adds the columns a table made by an earlier version lacks (the seed's
   * `glucose_alerts` its episode columns, both tables the notification
   * columns); a column another process added meanwhile is no error.
   */
  const addMissingColumns = Effect.fnUntraced(function* (tableName: string, columns: Readonly<Record<string, string>>) {
    const present = yield* presentColumns(tableName)
    for (const [name, type] of Object.entries(columns)) {
      if (present.has(name)) continue
      yield* run("migrate", `ALTER TABLE ${keyspace}.${tableName} ADD ${name} ${type}`).pipe(
        Effect.catchIf(
          (error) => isResponseError(error.cause, responseErrorCodes.invalid),
          (error) =>
            presentColumns(tableName).pipe(Effect.flatMap((now) => (now.has(name) ? Effect.void : Effect.fail(error))))
        )
      )
    }
  })

  /**
   * Rows written before the by-id table existed get their entry, once: a full
   * scan of the alerts, recorded as done only when it completed (a start that
   * dies halfway scans again; the entries are idempotent upserts).
   */
  const backfillById = Effect.gen(function* () {
    const done = yield* run("migrate", `SELECT migration FROM ${migrationsTable} WHERE migration = ?`, [BACKFILL_BY_ID])
    if (done.first() !== null) return
    let pageState: string | undefined
    let indexed = 0
    do {
      const page = yield* run("migrate", `SELECT user_id, timestamp, alert_id FROM ${table}`, [], {
        fetchSize: BACKFILL_PAGE,
        ...(pageState === undefined ? {} : { pageState })
      })
      yield* Effect.forEach(
        page.rows,
        (row) => run("migrate", insertById, [row.alert_id, row.user_id, row.timestamp], { isIdempotent: true }),
        { concurrency: config.writeConcurrency, discard: true }
      )
      indexed += page.rows.length
      pageState = page.pageState ?? undefined
    } while (pageState !== undefined)
    yield* run("migrate", `INSERT INTO ${migrationsTable} (migration, applied_at) VALUES (?, toTimestamp(now()))`, [
      BACKFILL_BY_ID
    ])
    yield* Effect.logInfo(`Cassandra: ${indexed} earlier alerts indexed by id in ${byIdTable}`)
  })

  yield* run(
    "create table",
    `CREATE TABLE IF NOT EXISTS ${table} (
      user_id text, timestamp timestamp, alert_id uuid, sensor_id text, glucose_value double,
      alert_type text, status text,
      started_at timestamp, ended_at timestamp, extreme_value double, last_value double, last_reading_at timestamp,
      acknowledged_at timestamp, acknowledged_by text, snoozed_until timestamp, notification_count int,
      last_notified_at timestamp, silenced_by text,
      PRIMARY KEY ((user_id), timestamp, alert_id)
    ) WITH CLUSTERING ORDER BY (timestamp DESC, alert_id DESC)`
  )
  yield* addMissingColumns("glucose_alerts", { ...episodeColumns, ...notificationColumns })
  yield* run(
    "create table",
    `CREATE TABLE IF NOT EXISTS ${byIdTable} (alert_id uuid PRIMARY KEY, user_id text, timestamp timestamp)`
  )
  yield* run(
    "create table",
    `CREATE TABLE IF NOT EXISTS ${openTable} (
      user_id text, sensor_id text, alert_type text, alert_id uuid, timestamp timestamp, glucose_value double,
      status text, started_at timestamp, extreme_value double, last_value double, last_reading_at timestamp,
      acknowledged_at timestamp, acknowledged_by text, snoozed_until timestamp, notification_count int,
      last_notified_at timestamp, silenced_by text,
      PRIMARY KEY ((user_id), sensor_id, alert_type, alert_id)
    )`
  )
  yield* addMissingColumns("glucose_alerts_open", notificationColumns)
  yield* run(
    "create table",
    `CREATE TABLE IF NOT EXISTS ${migrationsTable} (migration text PRIMARY KEY, applied_at timestamp)`
  )
  yield* backfillById
  yield* Effect.logInfo(`Cassandra: ${table}, ${byIdTable} and ${openTable} ready`)

  const insertAlert = `INSERT INTO ${table} (user_id, timestamp, alert_id, sensor_id, glucose_value, alert_type, status,
      started_at, ended_at, extreme_value, last_value, last_reading_at,
      acknowledged_at, acknowledged_by, snoozed_until, notification_count, last_notified_at, silenced_by)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
  const insertOpen = `INSERT INTO ${openTable} (user_id, sensor_id, alert_type, alert_id, timestamp, glucose_value,
      status, started_at, extreme_value, last_value, last_reading_at,
      acknowledged_at, acknowledged_by, snoozed_until, notification_count, last_notified_at, silenced_by)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
  const deleteOpen = `DELETE FROM ${openTable} WHERE user_id = ? AND sensor_id = ? AND alert_type = ? AND alert_id = ?`

  /** The episode's row, its by-id entry and its place among the open episodes (added, or removed once it ended). */
  const statementsOf = (alert: Alert): ReadonlyArray<CqlStatement> => {
    const alertId = types.Uuid.fromString(alert.alert_id)
    const timestamp = new Date(alert.timestamp)
    // Written as null too (not left unset): a later version that clears a field must clear the stored one.
    const notification = [
      dateOrNull(alert.acknowledged_at),
      alert.acknowledged_by,
      dateOrNull(alert.snoozed_until),
      alert.notification_count,
      dateOrNull(alert.last_notified_at),
      alert.silenced_by
    ]
    return [
      {
        query: insertAlert,
        params: [
          alert.user_id,
          timestamp,
          alertId,
          alert.sensor_id,
          alert.glucose_value,
          alert.alert_type,
          alert.status,
          new Date(alert.started_at),
          dateOrNull(alert.ended_at),
          alert.extreme_value,
          alert.last_value,
          new Date(alert.last_reading_at),
          ...notification
        ]
      },
      { query: insertById, params: [alertId, alert.user_id, timestamp] },
      alert.ended_at === null
        ? {
            query: insertOpen,
            params: [
              alert.user_id,
              alert.sensor_id,
              alert.alert_type,
              alertId,
              timestamp,
              alert.glucose_value,
              alert.status,
              new Date(alert.started_at),
              alert.extreme_value,
              alert.last_value,
              new Date(alert.last_reading_at),
              ...notification
            ]
          }
        : { query: deleteOpen, params: [alert.user_id, alert.sensor_id, alert.alert_type, alertId] }
    ]
  }

  const save = Effect.fn("AlertStore.save")(function* (alerts: ReadonlyArray<Alert>) {
    // One version per episode: two writes of the same rows sent at once could land in either order.
    yield* Effect.forEach(
      latestPerEpisode(alerts),
      (alert) => batch("save", statementsOf(alert), { isIdempotent: true }),
      { concurrency: config.writeConcurrency, discard: true }
    )
  })

  const columns = `user_id, timestamp, alert_id, sensor_id, glucose_value, alert_type, status,
    started_at, ended_at, extreme_value, last_value, last_reading_at,
    acknowledged_at, acknowledged_by, snoozed_until, notification_count, last_notified_at, silenced_by`

  const toAlert = (operation: string) => (row: unknown) =>
    Schema.decodeUnknownEffect(AlertRow)(row).pipe(
      Effect.flatMap((r) =>
        decodeStoredAlert({
          alert_id: String(r.alert_id),
          user_id: r.user_id,
          sensor_id: r.sensor_id,
          alert_type: r.alert_type,
          status: r.status,
          timestamp: r.timestamp.getTime(),
          glucose_value: r.glucose_value,
          started_at: millisOrNull(r.started_at),
          ended_at: millisOrNull(r.ended_at),
          extreme_value: r.extreme_value,
          last_value: r.last_value,
          last_reading_at: millisOrNull(r.last_reading_at),
          acknowledged_at: millisOrNull(r.acknowledged_at),
          acknowledged_by: r.acknowledged_by,
          snoozed_until: millisOrNull(r.snoozed_until),
          notification_count: r.notification_count,
          last_notified_at: millisOrNull(r.last_notified_at),
          silenced_by: r.silenced_by
        })
      ),
      Effect.mapError(failWith(operation))
    )

  /**
   * Keyset paging, as on PostgreSQL: the cursor is the (start, alert id) of the
   * page's last episode, and the next page reads the clustering slice below it.
   * Status and kind filter on the server (`ALLOW FILTERING`, inside the one user
   * partition), so a driver page may come back short or empty: pages are read
   * until the page holds `limit` episodes and one more shows there is a next
   * page, which starts right after the last episode returned whatever the
   * driver's page boundaries were.
   */
  const list = Effect.fn("AlertStore.list")(function* (query: AlertQuery) {
    const before = query.cursor === undefined ? undefined : yield* decodeAlertCursor(query.cursor)
    const conditions = ["user_id = ?", "timestamp >= ?"]
    const params: Array<unknown> = [query.user_id, new Date(query.from)]
    if (before !== undefined && before.timestamp < query.to) {
      conditions.push("(timestamp, alert_id) < (?, ?)")
      params.push(new Date(before.timestamp), types.Uuid.fromString(before.alert_id))
    } else {
      conditions.push("timestamp < ?")
      params.push(new Date(query.to))
    }
    if (query.status !== undefined) {
      conditions.push("status IN ?")
      params.push(storedStatuses(query.status))
    }
    if (query.alert_type !== undefined) {
      conditions.push("alert_type = ?")
      params.push(query.alert_type)
    }
    const filtered = query.status !== undefined || query.alert_type !== undefined
    const statement = `SELECT ${columns} FROM ${table} WHERE ${conditions.join(" AND ")}${filtered ? " ALLOW FILTERING" : ""}`
    const rows: Array<cassandra.types.Row> = []
    let pageState: string | undefined
    do {
      const result = yield* run("list", statement, params, {
        fetchSize: query.limit + 1,
        ...(pageState === undefined ? {} : { pageState })
      })
      rows.push(...result.rows)
      pageState = result.pageState ?? undefined
    } while (rows.length <= query.limit && pageState !== undefined)
    const items = yield* Effect.forEach(rows.slice(0, query.limit), toAlert("list"))
    const last = items[items.length - 1]
    return {
      items,
      next_cursor: rows.length > query.limit && last !== undefined ? encodeAlertCursor(last) : null
    }
  })

  const get = Effect.fn("AlertStore.get")(function* (user: UserId, alertId: AlertId) {
    const id = types.Uuid.fromString(alertId)
    const entry = (yield* run("get", `SELECT user_id, timestamp FROM ${byIdTable} WHERE alert_id = ?`, [id])).first()
    if (entry === null || entry.user_id !== user) return Option.none<Alert>()
    const row = (yield* run(
      "get",
      `SELECT ${columns} FROM ${table} WHERE user_id = ? AND timestamp = ? AND alert_id = ?`,
      [user, entry.timestamp, id]
    )).first()
    return row === null ? Option.none<Alert>() : Option.some(yield* toAlert("get")(row))
  })

  const listOpen = Effect.fn("AlertStore.listOpen")(function* (user: UserId) {
    const rows = yield* runAll(
      "listOpen",
      `SELECT user_id, sensor_id, alert_type, alert_id, timestamp, glucose_value, status, started_at,
        extreme_value, last_value, last_reading_at,
        acknowledged_at, acknowledged_by, snoozed_until, notification_count, last_notified_at, silenced_by
       FROM ${openTable} WHERE user_id = ?`,
      [user],
      { fetchSize: 1_000 }
    )
    const alerts = yield* Effect.forEach(rows, toAlert("listOpen"))
    // The open table is clustered by sensor and kind; the port lists open episodes newest first.
    return alerts.toSorted(newestFirst)
  })

  const ping = run("ping", "SELECT release_version FROM system.local").pipe(Effect.asVoid)

  return AlertStore.of({ save, list, get, listOpen, ping })
})

/**
 * The alert store on the Cassandra cluster `CASSANDRA_CONTACT_POINTS` names. Its
 * session is the one `CassandraAlertStateStore.layer` uses too: a process that
 * builds both opens one client.
 */
export const layer = Layer.effect(AlertStore, make).pipe(Layer.provide(CassandraSession.layer))
