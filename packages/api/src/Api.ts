import { HttpApi, OpenApi } from "effect/http-api"
import {
  AlertControlsGroup,
  AlertSettingsGroup,
  AlertsGroup,
  HealthGroup,
  IngestionGroup,
  LiveGroup,
  ReadingsGroup,
  SensorsGroup,
  WebhooksGroup
} from "./Groups.ts"
import { RequestValidation } from "./Middleware.ts"
import { NightscoutAuthorizationGroup, NightscoutCredentialsGroup, NightscoutGroup } from "./Nightscout.ts"
import { ReportsGroup } from "./Reports.ts"
import { StatisticsGroup } from "./Statistics.ts"

/**
 * The whole DexMon HTTP API, declared once: servers implement it, the SDK is
 * derived from it and `/openapi.json` is generated from it.
 */
export class DexMonApi extends HttpApi.make("dexmon")
  .add(IngestionGroup)
  .add(ReadingsGroup)
  .add(StatisticsGroup)
  .add(ReportsGroup)
  .add(AlertsGroup)
  .add(AlertControlsGroup)
  .add(AlertSettingsGroup)
  .add(WebhooksGroup)
  .add(NightscoutCredentialsGroup)
  .add(SensorsGroup)
  .add(LiveGroup)
  .add(NightscoutGroup)
  .add(NightscoutAuthorizationGroup)
  .add(HealthGroup)
  .middleware(RequestValidation)
  // Report every bad field of a request at once, not just the first.
  .annotate(HttpApi.ParseOptions, { errors: "all" })
  .annotateMerge(
    OpenApi.annotations({
      title: "DexMon",
      version: "1.0.0",
      description: "Continuous glucose monitor readings: ingestion, readings and alerts"
    })
  ) {}

// The per-service APIs share the id "dexmon" with the whole API, so one handler
// layer per group serves every API that includes the group.

/** What the receiver serves when it runs alone: ingestion and health, from the same declarations. */
export class ReceiverApi extends HttpApi.make("dexmon")
  .add(IngestionGroup)
  .add(HealthGroup)
  .middleware(RequestValidation)
  .annotate(HttpApi.ParseOptions, { errors: "all" }) {}

/**
 * What the gateway serves when it runs alone: reads, the owner's alert controls and settings, webhooks, Nightscout
 * credentials, sensors.
 */
export class GatewayApi extends HttpApi.make("dexmon")
  .add(ReadingsGroup)
  .add(StatisticsGroup)
  .add(ReportsGroup)
  .add(AlertsGroup)
  .add(AlertControlsGroup)
  .add(AlertSettingsGroup)
  .add(WebhooksGroup)
  .add(NightscoutCredentialsGroup)
  .add(SensorsGroup)
  .add(LiveGroup)
  .add(HealthGroup)
  .middleware(RequestValidation)
  .annotate(HttpApi.ParseOptions, { errors: "all" }) {}

/**
 * What the Nightscout service serves when it runs alone: Nightscout's API for its uploaders and followers (entries
 * in through the receiver's ingestion, reads hot and archived), the token exchange and health.
 */
export class NightscoutApi extends HttpApi.make("dexmon")
  .add(NightscoutGroup)
  .add(NightscoutAuthorizationGroup)
  .add(HealthGroup)
  .middleware(RequestValidation)
  .annotate(HttpApi.ParseOptions, { errors: "all" }) {}

/** What the processor and the notifier serve: health only, for probes. */
export class HealthApi extends HttpApi.make("dexmon").add(HealthGroup) {}
