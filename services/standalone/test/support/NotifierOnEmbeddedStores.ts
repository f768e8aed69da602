import { AlertRules } from "@dexmon/alerting"
import { NotifierLive } from "@dexmon/notifier"
import {
  AlertStateStore,
  PostgresAlertSettingsStore,
  PostgresAlertStateStore,
  PostgresAlertStore,
  PostgresEventLog,
  Topics
} from "@dexmon/ports"
import { layerEmbeddedPostgresTest } from "@dexmon/testing"
import { Effect, Layer } from "effect"

type StateStore = AlertStateStore["Service"]

/**
 * The notifier on the embedded PostgreSQL stores, on topics of `partitions` partitions named from
 * `prefix`, with the real state store's `save` replaced by what `save` makes of it (a racing writer, a
 * held write): what the notifier does when its state writes meet those.
 */
export const notifierOnEmbeddedStoresWith = (options: {
  readonly prefix: string
  readonly partitions: number
  readonly save: (real: StateStore) => StateStore["save"]
}) =>
  NotifierLive.pipe(
    Layer.provide(AlertRules.layer),
    Layer.provideMerge(
      Layer.mergeAll(
        PostgresEventLog.layer,
        PostgresAlertStore.layer,
        PostgresAlertSettingsStore.layer,
        Layer.effect(
          AlertStateStore,
          Effect.map(PostgresAlertStateStore.make, (real) => AlertStateStore.of({ ...real, save: options.save(real) }))
        )
      ).pipe(
        Layer.provideMerge(
          Layer.succeed(Topics, Topics.make(options.partitions, `${options.prefix}-${Date.now().toString(36)}.`))
        ),
        Layer.provideMerge(layerEmbeddedPostgresTest)
      )
    )
  )
