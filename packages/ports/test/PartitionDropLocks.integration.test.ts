import { assert, layer } from "@effect/vitest"
import { Clock, Deferred, Effect, Fiber, Layer, Schedule } from "effect"
import { SqlClient } from "effect/sql"
import { ArchiveLedger, PostgresArchiveLedger, PostgresReadingStore, ReadingsSchema } from "../src/index.ts"
import { layerServerPostgresTest } from "../src/testing/index.ts"

const stores = PostgresArchiveLedger.layer.pipe(
  Layer.provideMerge(PostgresReadingStore.layer),
  Layer.provideMerge(layerServerPostgresTest)
)

/** Sessions of this database waiting on a lock now. */
const waitingOnLocks = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<{ waiting: number }>`
    SELECT count(*)::int AS waiting FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`
  return Number(row?.waiting ?? 0)
})

layer(stores, { timeout: 60_000, excludeTestServices: true })("dropping emptied monthly partitions", (it) => {
  it.effect(
    "while a processor creates a partition under the partitions lock, the archiver's drop waits its turn instead of deadlocking with it",
    () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const ledger = yield* ArchiveLedger
        const holding = yield* Deferred.make<void>()
        const create = yield* Deferred.make<void>()
        // A processor's `ensureFor`: the partitions lock, then CREATE ... PARTITION OF (which locks the parent).
        const processor = yield* sql
          .withTransaction(
            Effect.gen(function* () {
              yield* ReadingsSchema.lockPartitions(sql)
              yield* Deferred.succeed(holding, undefined)
              yield* Deferred.await(create)
              yield* sql`CREATE TABLE glucose_readings_209901 PARTITION OF glucose_readings
                FOR VALUES FROM ('2099-01-01') TO ('2099-02-01')`
            })
          )
          .pipe(Effect.forkChild)
        yield* Deferred.await(holding)
        // The fresh database's oldest months are empty and over: the drop has work to do.
        const archiver = yield* ledger.dropEmptyPartitions(yield* Clock.currentTimeMillis).pipe(Effect.forkChild)
        // Until the drop waits on a lock the processor holds (its real signal, not a delay)...
        yield* waitingOnLocks.pipe(
          Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (waiting) => waiting >= 1 }),
          Effect.timeout("30 seconds")
        )
        // ...then the processor creates its partition. In the other lock order the drop would hold a partition
        // and the parent while waiting for the partitions lock, and PostgreSQL would abort one side (40P01).
        yield* Deferred.succeed(create, undefined)
        yield* Fiber.join(processor)
        const dropped = yield* Fiber.join(archiver)
        assert.isNotEmpty(dropped)
        const [{ exists }] = (yield* sql<{ exists: boolean }>`
          SELECT to_regclass('glucose_readings_209901') IS NOT NULL AS exists`) as [{ exists: boolean }]
        assert.isTrue(exists)
      })
  )
})
