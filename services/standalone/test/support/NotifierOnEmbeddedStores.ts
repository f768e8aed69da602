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

interface EmbeddedStoresOptions {
  readonly prefix: string
  readonly partitions: number
  readonly save: (real: StateStore) => StateStore["save"]
}

/**
 * The notifier's stores on the embedded PostgreSQL, on topics of `partitions` partitions named from
 * `prefix`, with the real state store's `save` replaced by what `save` makes of it (a racing writer, a
 * held write). Apart from the notifier, for a test that starts and stops notifiers on the same stores.
 */
export const notifierStoresOnEmbedded = (options: EmbeddedStoresOptions) =>
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

/** The notifier with the deployment's default rules, on the stores its context provides. */
export const notifierWithDefaultRules = NotifierLive.pipe(Layer.provide(AlertRules.layer))

/** The notifier on `notifierStoresOnEmbedded`: what it does when its state writes meet a race or a held write. */
export const notifierOnEmbeddedStoresWith = (options: EmbeddedStoresOptions) =>
  notifierWithDefaultRules.pipe(Layer.provideMerge(notifierStoresOnEmbedded(options)))
