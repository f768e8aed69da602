import {
  AlertRules,
  AlertSettings,
  defaultAlertRules,
  defaultAlertSettings,
  encodeAlertSettings,
  settingsEtag
} from "@dexmon/alerting"
import { PreconditionFailed, PreconditionRequired, type ServiceUnavailable, ValidationError } from "@dexmon/api"
import type { UserId } from "@dexmon/domain"
import { AlertSettingsStore } from "@dexmon/ports"
import { Context, Effect, Layer, Option, Schema } from "effect"
import { unavailable } from "./Unavailable.ts"

/** A settings document as the API answers it: the document and its strong ETag (quoted). */
export interface SettingsWithEtag {
  readonly settings: AlertSettings
  readonly etag: string
}

const decodeStored = Schema.decodeUnknownEffect(Schema.fromJsonString(AlertSettings))

const settingsUnavailable = unavailable("the alert settings store")

/** Whether an `If-Match` header names `etag` (strong comparison; `*` names any current document). */
const matches = (ifMatch: string, etag: string) =>
  ifMatch.split(",").some((tag) => {
    const trimmed = tag.trim()
    return trimmed === "*" || trimmed === etag
  })

/**
 * The caller's alert settings: the deployment's defaults until the user
 * changes them, then the newest stored version. A replacement names the
 * version it was made from (`If-Match`) and becomes the next version, which
 * the receiver stamps on every reading accepted after it answered.
 */
export class UserAlertSettings extends Context.Service<
  UserAlertSettings,
  {
    readonly read: (userId: UserId) => Effect.Effect<SettingsWithEtag, ServiceUnavailable>
    readonly replace: (
      userId: UserId,
      settings: AlertSettings,
      ifMatch: string | undefined
    ) => Effect.Effect<
      SettingsWithEtag,
      ValidationError | PreconditionFailed | PreconditionRequired | ServiceUnavailable
    >
  }
>()("dexmon/gateway/UserAlertSettings") {
  static readonly layer = Layer.effect(
    UserAlertSettings,
    Effect.gen(function* () {
      const store = yield* AlertSettingsStore
      const rules = yield* AlertRules
      const defaults = defaultAlertSettings(rules)
      const fixedAt = defaults.urgent_low.threshold

      /** The current document and its version (0: the defaults, never stored). */
      const current = Effect.fnUntraced(function* (userId: UserId) {
        const stored = yield* store
          .current(userId)
          .pipe(Effect.catchTag("AlertSettingsStoreError", settingsUnavailable))
        if (Option.isNone(stored)) return { settings: defaults, version: 0 }
        // A stored document was valid when written; one that no longer decodes is a defect of this server.
        const decoded = yield* Effect.orDie(decodeStored(stored.value.document))
        // Urgent low is the deployment's: shown as it stands now, even if it changed since the document was written.
        const settings: AlertSettings = { ...decoded, urgent_low: { ...decoded.urgent_low, threshold: fixedAt } }
        return { settings, version: stored.value.version }
      })

      const read = Effect.fn("UserAlertSettings.read")(function* (userId: UserId) {
        const { settings } = yield* current(userId)
        return { settings, etag: settingsEtag(settings) }
      })

      const replace = Effect.fn("UserAlertSettings.replace")(function* (
        userId: UserId,
        requested: AlertSettings,
        ifMatch: string | undefined
      ) {
        // Urgent low is the deployment's, shown as the document can hold it (40 to 55): a body may repeat it,
        // or carry the schema's default 55 (an omitted key); any other value is refused, not silently ignored.
        const given = requested.urgent_low.threshold
        if (given !== fixedAt && given !== defaultAlertRules.urgentLowAt) {
          const message = `is fixed by this deployment: send ${fixedAt} or leave it out`
          return yield* new ValidationError({
            message: `invalid request payload: urgent_low.threshold: ${message}`,
            issues: [{ path: "urgent_low.threshold", message }]
          })
        }
        const settings: AlertSettings = { ...requested, urgent_low: { ...requested.urgent_low, threshold: fixedAt } }
        const before = yield* current(userId)
        const etag = settingsEtag(before.settings)
        if (ifMatch === undefined && before.version > 0) {
          return yield* new PreconditionRequired({
            message: `settings exist: send If-Match with the ETag a GET answered (${etag})`
          })
        }
        if (ifMatch !== undefined && !matches(ifMatch, etag)) {
          return yield* new PreconditionFailed({
            message: "the settings changed since they were read: GET them again and retry"
          })
        }
        const stored = yield* store.put(userId, JSON.stringify(encodeAlertSettings(settings)), before.version).pipe(
          Effect.catchTags({
            // Another replacement landed between the read and the write: this one was made from a stale version.
            AlertSettingsConflict: () =>
              Effect.fail(
                new PreconditionFailed({
                  message: "the settings changed since they were read: GET them again and retry"
                })
              ),
            AlertSettingsStoreError: settingsUnavailable
          })
        )
        yield* Effect.annotateCurrentSpan({ "dexmon.settings_version": stored.version })
        yield* Effect.logInfo(`alert settings of ${userId} are now version ${stored.version}`)
        return { settings, etag: settingsEtag(settings) }
      })

      return UserAlertSettings.of({ read, replace })
    })
  )
}
