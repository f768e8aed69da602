import type { SensorId, UserId } from "@dexmon/domain"
import { Data, Effect, Layer, Option } from "effect"
import { SqlClient } from "effect/sql"
import { makeBatchedLookup } from "../postgres/BatchedLookup.ts"
import { runMigrations } from "../postgres/Migrations.ts"
import { failureOf } from "../StoreFailure.ts"
import { type Claim, SensorOwnership, SensorOwnershipError } from "./SensorOwnership.ts"

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

/** Inside the claim's transaction: another user owns some of the sensors, so the transaction rolls back. */
class ClaimRefused extends Data.TaggedError("ClaimRefused")<{ readonly foreign: ReadonlyArray<SensorId> }> {}

/**
 * How many times one claim inserts the sensors it found without an owner. Each round after the first
 * only happens when an owner released a sensor between this claim's insert and its read.
 */
const CLAIM_ROUNDS = 3

/**
 * Sensor owners in a PostgreSQL table; a sensor's first claim wins, also between concurrent claims,
 * and a claim that finds a foreign sensor claims nothing.
 *
 * Nothing is cached: owners change (a release, then another user's claim), possibly through another
 * process, and a remembered owner would let the old one post to the sensor after that. Instead the
 * common case costs a share of one statement: a batch whose sensors all have owners already is decided
 * by one read, which concurrent claims share (`makeBatchedLookup`: one `ANY($1)` read for all of them,
 * never joined once sent, so it sees every release answered before the claim began); only a batch with a
 * new sensor opens a transaction of its own. Memory does not grow with the number of sensors.
 */
export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* runMigrations("sensor_ownership", migrations)

  const ownersOf = (sensorIds: ReadonlyArray<SensorId>) =>
    Effect.map(
      sql<{ sensor_id: SensorId; user_id: UserId }>`
        SELECT sensor_id, user_id FROM sensor_owners WHERE sensor_id = ANY(${sensorIds}::text[])`,
      (rows) => new Map(rows.map((row) => [row.sensor_id, row.user_id]))
    )
  /** The same read, shared by the claims and lookups that run at the same time (outside any transaction). */
  const sharedOwnersOf = yield* makeBatchedLookup(ownersOf)

  /** Those of `sensorIds` (in their order) owned by someone other than `userId`, and those with no owner. */
  const sortOut = (userId: UserId, sensorIds: ReadonlyArray<SensorId>, owners: ReadonlyMap<SensorId, UserId>) => ({
    foreign: sensorIds.filter((sensorId) => {
      const owner = owners.get(sensorId)
      return owner !== undefined && owner !== userId
    }),
    unowned: sensorIds.filter((sensorId) => !owners.has(sensorId))
  })

  /**
   * Inserts the unowned sensors and reads every owner, in one transaction that rolls back when any
   * sensor is foreign. Each statement reads a new snapshot (READ COMMITTED), so the read sees a
   * concurrent claim that the insert waited for and lost to; the insert goes in sensor order, so two
   * claims wait on each other in one direction only.
   */
  const claimInTransaction = (userId: UserId, sensorIds: ReadonlyArray<SensorId>, unowned: ReadonlyArray<SensorId>) =>
    sql.withTransaction(
      Effect.gen(function* () {
        const claimed: Array<SensorId> = []
        let pending = unowned
        for (let round = 0; round < CLAIM_ROUNDS; round++) {
          const inserted = yield* sql<{ sensor_id: SensorId }>`
            INSERT INTO sensor_owners (sensor_id, user_id)
            SELECT sensor_id, ${userId} FROM unnest(${pending}::text[]) AS t(sensor_id)
            ORDER BY sensor_id
            ON CONFLICT (sensor_id) DO NOTHING
            RETURNING sensor_id`
          claimed.push(...inserted.map((row) => row.sensor_id))
          const { foreign, unowned } = sortOut(userId, sensorIds, yield* ownersOf(sensorIds))
          if (foreign.length > 0) return yield* new ClaimRefused({ foreign })
          // A sensor released after the insert skipped it (as owned) and before the read: insert it again.
          if (unowned.length === 0) return { foreign: [], claimed } satisfies Claim
          pending = unowned
        }
        return yield* new SensorOwnershipError({
          operation: "claim",
          message: `sensors released and claimed again ${CLAIM_ROUNDS} times while this claim ran`,
          transient: true
        })
      })
    )

  const claim = Effect.fn("SensorOwnership.claim")(function* (userId: UserId, sensorIds: ReadonlyArray<SensorId>) {
    const unique = [...new Set(sensorIds)]
    if (unique.length === 0) return { foreign: [], claimed: [] } satisfies Claim
    const { foreign, unowned } = sortOut(
      userId,
      unique,
      yield* sharedOwnersOf(unique).pipe(Effect.mapError(failWith("claim")))
    )
    // Decided by the one read: a foreign sensor refuses the batch, and nothing needs claiming.
    if (foreign.length > 0 || unowned.length === 0) return { foreign, claimed: [] } satisfies Claim
    return yield* claimInTransaction(userId, unique, unowned).pipe(
      Effect.catchTags({
        ClaimRefused: (refused): Effect.Effect<Claim> => Effect.succeed({ foreign: refused.foreign, claimed: [] }),
        SqlError: (error) => Effect.fail(failWith("claim")(error))
      })
    )
  })

  const release = Effect.fn("SensorOwnership.release")(function* (userId: UserId, sensorIds: ReadonlyArray<SensorId>) {
    const unique = [...new Set(sensorIds)]
    if (unique.length === 0) return []
    const rows = yield* sql<{ sensor_id: SensorId }>`
      DELETE FROM sensor_owners WHERE user_id = ${userId} AND sensor_id = ANY(${unique}::text[])
      RETURNING sensor_id`.pipe(Effect.mapError(failWith("release")))
    return rows.map((row) => row.sensor_id)
  })

  const ownerOf = Effect.fn("SensorOwnership.ownerOf")(function* (sensorId: SensorId) {
    const owners = yield* sharedOwnersOf([sensorId]).pipe(Effect.mapError(failWith("ownerOf")))
    return Option.fromNullishOr(owners.get(sensorId))
  })

  const ping = sql`SELECT 1`.pipe(Effect.asVoid, Effect.mapError(failWith("ping")))
  return SensorOwnership.of({ claim, release, ownerOf, ping })
})

export const layer = Layer.effect(SensorOwnership, make)
