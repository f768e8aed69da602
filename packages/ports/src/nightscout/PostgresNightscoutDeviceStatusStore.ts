import { UserId } from "@dexmon/domain"
import { PgTypes } from "@effect/sql-pg"
import { Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { runMigrations } from "../postgres/Migrations.ts"
import { failureOf } from "../StoreFailure.ts"
import { NightscoutDeviceStatusStore, NightscoutDeviceStatusStoreError } from "./NightscoutDeviceStatusStore.ts"

const migrations = {
  "0001_nightscout_device_status": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE nightscout_device_status (
      user_id text NOT NULL,
      sensor_id text NOT NULL,
      device text NOT NULL,
      created_at timestamptz NOT NULL,
      uploader_battery double precision,
      uploader jsonb,
      PRIMARY KEY (user_id, sensor_id)
    )`
    yield* sql`CREATE INDEX nightscout_device_status_by_user ON nightscout_device_status (user_id, created_at)`
  })
}

const failWith = failureOf((fields) => new NightscoutDeviceStatusStoreError(fields))

const StatusRow = Schema.Struct({
  user_id: UserId,
  sensor_id: Schema.String,
  device: Schema.String,
  created_at: Schema.Number,
  uploader_battery: Schema.NullOr(Schema.Number),
  uploader: Schema.NullOr(Schema.String)
})

/** Device statuses in one PostgreSQL table, a row per (user, sensor). */
export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* runMigrations("nightscout_device_status", migrations)

  const keep = Effect.fn("NightscoutDeviceStatusStore.keep")(function* (
    status: Parameters<NightscoutDeviceStatusStore["Service"]["keep"]>[0]
  ) {
    // The later status wins whatever order they arrive in; an equal time takes the one received last.
    const rows = yield* sql`INSERT INTO nightscout_device_status
        (user_id, sensor_id, device, created_at, uploader_battery, uploader)
      VALUES (${status.user_id}, ${status.sensor_id}, ${status.device}, ${PgTypes.timestamptz(status.created_at)},
        ${status.uploader_battery}, ${status.uploader}::jsonb)
      ON CONFLICT (user_id, sensor_id) DO UPDATE SET device = EXCLUDED.device, created_at = EXCLUDED.created_at,
        uploader_battery = EXCLUDED.uploader_battery, uploader = EXCLUDED.uploader
      WHERE nightscout_device_status.created_at <= EXCLUDED.created_at
      RETURNING sensor_id`.pipe(Effect.mapError(failWith("keep")))
    return rows.length > 0
  })

  const latest = Effect.fn("NightscoutDeviceStatusStore.latest")(function* (userId: UserId, count: number) {
    const rows = yield* sql`SELECT user_id, sensor_id, device,
        floor(extract(epoch FROM created_at) * 1000)::float8 AS created_at, uploader_battery, uploader::text AS uploader
      FROM nightscout_device_status WHERE user_id = ${userId}
      ORDER BY created_at DESC, sensor_id COLLATE "C" LIMIT ${count}`.pipe(Effect.mapError(failWith("latest")))
    return yield* Schema.decodeUnknownEffect(Schema.Array(StatusRow))(rows).pipe(Effect.mapError(failWith("latest")))
  })

  return NightscoutDeviceStatusStore.of({ keep, latest })
})

/** Device statuses on whatever PostgreSQL the `SqlClient` points at. */
export const layer = Layer.effect(NightscoutDeviceStatusStore, make)
