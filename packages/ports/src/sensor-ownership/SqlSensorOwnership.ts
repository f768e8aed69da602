import type { SensorId, UserId } from "@dexmon/domain"
import { Effect, Layer, Option } from "effect"
import { SqlClient } from "effect/sql"
import { runMigrations } from "../postgres/Migrations.ts"
import { failureOf } from "../StoreFailure.ts"
import { SensorOwnership, SensorOwnershipError } from "./SensorOwnership.ts"

const migrations = {
  "0001_sensor_owners": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE sensor_owners (
      sensor_id text PRIMARY KEY,
      user_id text NOT NULL,
      claimed_at timestamptz NOT NULL DEFAULT now()
    )`
  })
}

const failWith = failureOf((fields) => new SensorOwnershipError(fields))

/** Owners never change, so a process remembers the ones it has seen (up to this many sensors). */
const REMEMBERED_OWNERS = 100_000

/** Sensor owners in a PostgreSQL table; a sensor's first claim wins, also between concurrent claims. */
export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* runMigrations("sensor_ownership", migrations)
  const owners = new Map<string, string>()

  const remember = (sensorId: string, userId: string) => {
    if (owners.size >= REMEMBERED_OWNERS) owners.delete(owners.keys().next().value!)
    owners.set(sensorId, userId)
  }

  const claim = Effect.fn("SensorOwnership.claim")(function* (userId: UserId, sensorIds: ReadonlyArray<SensorId>) {
    const unknown = [...new Set(sensorIds)].filter((sensorId) => !owners.has(sensorId))
    if (unknown.length > 0) {
      yield* sql`
        INSERT INTO sensor_owners (sensor_id, user_id)
        SELECT sensor_id, ${userId} FROM unnest(${unknown}::text[]) AS t(sensor_id)
        ORDER BY sensor_id
        ON CONFLICT (sensor_id) DO NOTHING`.pipe(Effect.mapError(failWith("claim")))
      // A second statement, so its snapshot sees a concurrent claim that the insert waited for and lost to.
      const rows = yield* sql<{ sensor_id: string; user_id: string }>`
        SELECT sensor_id, user_id FROM sensor_owners WHERE sensor_id = ANY(${unknown}::text[])`.pipe(
        Effect.mapError(failWith("claim"))
      )
      for (const row of rows) remember(row.sensor_id, row.user_id)
    }
    return [...new Set(sensorIds)].filter((sensorId) => owners.get(sensorId) !== userId)
  })

  const ownerOf = Effect.fn("SensorOwnership.ownerOf")(function* (sensorId: SensorId) {
    const known = owners.get(sensorId)
    if (known !== undefined) return Option.some(known as UserId)
    const rows = yield* sql<{ user_id: string }>`
      SELECT user_id FROM sensor_owners WHERE sensor_id = ${sensorId}`.pipe(Effect.mapError(failWith("ownerOf")))
    const owner = rows[0]?.user_id
    if (owner === undefined) return Option.none<UserId>()
    remember(sensorId, owner)
    return Option.some(owner as UserId)
  })

  const ping = sql`SELECT 1`.pipe(Effect.asVoid, Effect.mapError(failWith("ping")))
  return SensorOwnership.of({ claim, ownerOf, ping })
})

export const layer = Layer.effect(SensorOwnership, make)
