import {
  AlertSettingsStore,
  AlertStateStore,
  AlertStore,
  ArchiveStore,
  DeliveryOutbox,
  EventLog,
  NightscoutCredentialStore,
  ReadingStore,
  SensorOwnership,
  WebhookStore
} from "@dexmon/ports"
import { Context, Effect, Layer, Option } from "effect"

type Status = "ok" | "unavailable"

const probe = (check: Effect.Effect<void, unknown>) =>
  check.pipe(
    Effect.timeout("2 seconds"),
    Effect.as<Status>("ok"),
    Effect.orElseSucceed((): Status => "unavailable")
  )

/** The stores a process depends on, each with a cheap probe, for `/readyz`. */
export class Readiness extends Context.Service<
  Readiness,
  {
    readonly check: Effect.Effect<Record<string, Status>>
  }
>()("dexmon/platform/Readiness") {
  /** Probes every port this process was built with (and only those): a receiver is ready without a database. */
  static readonly layer = Layer.effect(
    Readiness,
    Effect.gen(function* () {
      const checks: Array<readonly [string, Effect.Effect<void, unknown>]> = []
      const eventLog = yield* Effect.serviceOption(EventLog)
      if (Option.isSome(eventLog)) checks.push(["event_log", eventLog.value.ping])
      const readings = yield* Effect.serviceOption(ReadingStore)
      if (Option.isSome(readings)) checks.push(["readings_store", readings.value.ping])
      const alerts = yield* Effect.serviceOption(AlertStore)
      if (Option.isSome(alerts)) checks.push(["alert_store", alerts.value.ping])
      const alertStates = yield* Effect.serviceOption(AlertStateStore)
      if (Option.isSome(alertStates)) checks.push(["alert_state_store", alertStates.value.ping])
      const owners = yield* Effect.serviceOption(SensorOwnership)
      if (Option.isSome(owners)) checks.push(["sensor_owners", owners.value.ping])
      const settings = yield* Effect.serviceOption(AlertSettingsStore)
      if (Option.isSome(settings)) checks.push(["alert_settings", settings.value.ping])
      const webhooks = yield* Effect.serviceOption(WebhookStore)
      if (Option.isSome(webhooks)) checks.push(["webhooks", webhooks.value.ping])
      const nightscout = yield* Effect.serviceOption(NightscoutCredentialStore)
      if (Option.isSome(nightscout)) checks.push(["nightscout_credentials", nightscout.value.ping])
      const outbox = yield* Effect.serviceOption(DeliveryOutbox)
      if (Option.isSome(outbox)) checks.push(["delivery_outbox", outbox.value.ping])
      const archive = yield* Effect.serviceOption(ArchiveStore)
      if (Option.isSome(archive)) checks.push(["archive_store", archive.value.ping])
      const check = Effect.forEach(
        checks,
        ([name, ping]) => Effect.map(probe(ping), (status) => [name, status] as const),
        {
          concurrency: "unbounded"
        }
      ).pipe(Effect.map((results) => Object.fromEntries(results)))
      return Readiness.of({ check })
    })
  )
}
