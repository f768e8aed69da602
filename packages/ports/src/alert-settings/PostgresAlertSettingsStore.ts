import { UserId } from "@dexmon/domain"
import { Effect, Layer, Option, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { makeBatchedLookup } from "../postgres/BatchedLookup.ts"
import { runMigrations } from "../postgres/Migrations.ts"
import { failureOf } from "../StoreFailure.ts"
import {
  AlertSettingsConflict,
  AlertSettingsStore,
  AlertSettingsStoreError,
  type StoredAlertSettings
} from "./AlertSettingsStore.ts"

const migrations = {
  "0001_alert_settings": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    // The primary key is also the index `currentVersion` reads backwards, and it decides racing puts.
    yield* sql`CREATE TABLE alert_settings (
      user_id text NOT NULL,
      version integer NOT NULL CHECK (version > 0),
      document jsonb NOT NULL,
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (user_id, version)
    )`
  })
}

const failWith = failureOf((fields) => new AlertSettingsStoreError(fields))

const SettingsRow = Schema.Struct({
  user_id: UserId,
  version: Schema.Number,
  document: Schema.String,
  updated_at: Schema.Number
})

const decodeRows = (operation: string) => (rows: unknown) =>
  Schema.decodeUnknownEffect(Schema.Array(SettingsRow))(rows).pipe(Effect.mapError(failWith(operation)))

/** Versions never change, so a process remembers the ones it has read or written (up to this many). */
const REMEMBERED_VERSIONS = 10_000

/**
 * Alert settings versions in a PostgreSQL table. The document is jsonb, so
 * it is handed back as PostgreSQL re-serialises it (keys reordered, its own
 * spacing, the last of duplicate keys): the same JSON value, not the same text.
 */
export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* runMigrations("alert_settings", migrations)
  const remembered = new Map<string, StoredAlertSettings>()
  const keyOf = (userId: string, version: number) => `${version}\u0000${userId}`

  const remember = (settings: StoredAlertSettings) => {
    if (remembered.size >= REMEMBERED_VERSIONS) remembered.delete(remembered.keys().next().value!)
    remembered.set(keyOf(settings.user_id, settings.version), settings)
    return settings
  }

  // `document::text`: the driver would otherwise parse jsonb into an object.
  const columns = sql`user_id, version, document::text AS document,
    floor(extract(epoch FROM updated_at) * 1000)::float8 AS updated_at`

  const current = Effect.fn("AlertSettingsStore.current")(function* (userId: UserId) {
    const rows = yield* sql`
      SELECT ${columns} FROM alert_settings WHERE user_id = ${userId}
      ORDER BY version DESC LIMIT 1`.pipe(Effect.mapError(failWith("current")), Effect.flatMap(decodeRows("current")))
    return Option.map(Option.fromNullishOr(rows[0]), remember)
  })

  /**
   * The newest version of each user, for the lookups that run at the same time: one statement for all of
   * them (the receiver asks once per request). Never cached, and never joined once sent, so a put answered
   * before a lookup began shows in it.
   */
  const newestVersions = yield* makeBatchedLookup((userIds: ReadonlyArray<UserId>) =>
    Effect.map(
      sql<{ user_id: UserId; version: number }>`
          SELECT u.user_id, (SELECT coalesce(max(version), 0) FROM alert_settings s WHERE s.user_id = u.user_id) AS version
          FROM unnest(${userIds}::text[]) AS u(user_id)`,
      (rows) => new Map(rows.map((row) => [row.user_id, row.version]))
    )
  )

  const currentVersion = Effect.fn("AlertSettingsStore.currentVersion")(function* (userId: UserId) {
    const versions = yield* newestVersions([userId]).pipe(Effect.mapError(failWith("currentVersion")))
    return versions.get(userId) ?? 0
  })

  const at = Effect.fn("AlertSettingsStore.at")(function* (userId: UserId, version: number) {
    // Version 0 (the defaults) is never stored, and no other non-positive or fractional version exists.
    if (!Number.isSafeInteger(version) || version < 1) return Option.none<StoredAlertSettings>()
    const known = remembered.get(keyOf(userId, version))
    if (known !== undefined) return Option.some(known)
    const rows = yield* sql`
      SELECT ${columns} FROM alert_settings WHERE user_id = ${userId} AND version = ${version}::int`.pipe(
      Effect.mapError(failWith("at")),
      Effect.flatMap(decodeRows("at"))
    )
    // A missing version is not remembered: it may be the one a concurrent put is writing.
    return Option.map(Option.fromNullishOr(rows[0]), remember)
  })

  /**
   * One statement: the next version is inserted only while the newest stored
   * one is `expectedVersion`. Two puts on the same expected version both pass
   * that check in their snapshots, and then the primary key decides: the one
   * that waited finds the winner's row and inserts nothing. No rows back means
   * a conflict; a second statement reads the version that beat it.
   */
  const put = Effect.fn("AlertSettingsStore.put")(function* (
    userId: UserId,
    document: string,
    expectedVersion: number
  ) {
    if (Number.isSafeInteger(expectedVersion) && expectedVersion >= 0) {
      const rows = yield* sql`
        INSERT INTO alert_settings (user_id, version, document)
        SELECT ${userId}, ${expectedVersion}::int + 1, ${document}::jsonb
        WHERE (SELECT coalesce(max(version), 0) FROM alert_settings WHERE user_id = ${userId}) = ${expectedVersion}::int
        ON CONFLICT (user_id, version) DO NOTHING
        RETURNING ${columns}`.pipe(Effect.mapError(failWith("put")), Effect.flatMap(decodeRows("put")))
      if (rows[0] !== undefined) return remember(rows[0])
    }
    return yield* new AlertSettingsConflict({
      user_id: userId,
      expected_version: expectedVersion,
      current_version: yield* currentVersion(userId)
    })
  })

  const ping = sql`SELECT 1`.pipe(Effect.asVoid, Effect.mapError(failWith("ping")))

  return AlertSettingsStore.of({ current, currentVersion, at, put, ping })
})

/** Alert settings on whatever PostgreSQL the `SqlClient` points at. */
export const layer = Layer.effect(AlertSettingsStore, make)
