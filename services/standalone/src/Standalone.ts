import { DexMonApi } from "@dexmon/api"
import { AlertThresholds, EventIds, HotRetention } from "@dexmon/domain"
import { GatewayHttp } from "@dexmon/gateway"
import { NotifierLive } from "@dexmon/notifier"
import {
  AlertStoreLive,
  EventLogLive,
  HealthHttp,
  layerHttpServer,
  Readiness,
  ReadingStoreLive
} from "@dexmon/platform"
import { ProcessorLive } from "@dexmon/processor"
import { IngestionHttp } from "@dexmon/receiver"
import { Layer } from "effect"

/**
 * Every DexMon service in one process: the receiver and the gateway behind one
 * HTTP server, the processor and the notifier as consumers of the same event
 * log, all on the stores chosen by configuration (embedded by default).
 */
export const StandaloneLive = Layer.mergeAll(
  layerHttpServer(DexMonApi, Layer.mergeAll(IngestionHttp, GatewayHttp, HealthHttp)).pipe(
    Layer.provide(Readiness.layer)
  ),
  ProcessorLive,
  NotifierLive
).pipe(
  Layer.provide(
    Layer.mergeAll(
      EventLogLive,
      ReadingStoreLive,
      AlertStoreLive,
      EventIds.layer,
      HotRetention.layerConfig,
      AlertThresholds.layerConfig
    )
  )
)
