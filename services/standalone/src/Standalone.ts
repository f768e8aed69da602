import { AlertRules } from "@dexmon/alerting"
import { DexMonApi } from "@dexmon/api"
import { Archiver, ReadingsQuery } from "@dexmon/archive"
import { ScheduledArchiverLive } from "@dexmon/archiver"
import { DelivererLive, WebhookSender } from "@dexmon/deliverer"
import { EventIds, HotRetention } from "@dexmon/domain"
import { GatewayHttp } from "@dexmon/gateway"
import { NightscoutHttp } from "@dexmon/nightscout"
import { NotifierLive } from "@dexmon/notifier"
import {
  AlertSettingsStoreLive,
  AlertStateStoreLive,
  AlertStoreLive,
  ArchiveLedgerLive,
  ArchiveStoreLive,
  DeliveryOutboxLive,
  EventLogLive,
  HealthHttp,
  layerHttpServer,
  NightscoutCredentialStoreLive,
  NightscoutDeviceStatusStoreLive,
  Readiness,
  SensorOwnershipLive,
  WebhookStoreLive
} from "@dexmon/platform"
import { ProcessorLive } from "@dexmon/processor"
import { IngestionHttp } from "@dexmon/receiver"
import { Layer } from "effect"

/**
 * Every DexMon service in one process: the receiver and the gateway behind one
 * HTTP server, the processor and the notifier as consumers of the same event
 * log, the deliverer on the notifications, the archiver on a schedule, all on the stores chosen by configuration
 * (embedded by default).
 */
export const StandaloneLive = Layer.mergeAll(
  layerHttpServer(DexMonApi, Layer.mergeAll(IngestionHttp, NightscoutHttp, GatewayHttp, HealthHttp)).pipe(
    Layer.provide(Readiness.layer)
  ),
  ProcessorLive,
  NotifierLive,
  DelivererLive,
  ScheduledArchiverLive
).pipe(
  Layer.provide(Layer.mergeAll(ReadingsQuery.layer, Archiver.layer)),
  Layer.provide(
    Layer.mergeAll(
      EventLogLive,
      ArchiveLedgerLive,
      ArchiveStoreLive,
      SensorOwnershipLive,
      AlertSettingsStoreLive,
      WebhookStoreLive,
      NightscoutCredentialStoreLive,
      NightscoutDeviceStatusStoreLive,
      DeliveryOutboxLive,
      WebhookSender.layerConfig,
      AlertStoreLive,
      AlertStateStoreLive,
      EventIds.layer,
      HotRetention.layerConfig,
      AlertRules.layerConfig
    )
  )
)
