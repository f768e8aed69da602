import {
  NightscoutCredentialId,
  NightscoutCredentialKind,
  NightscoutCredentialView,
  NightscoutRole,
  type UserId
} from "@dexmon/domain"
import { Context, Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, HttpApiMiddleware, HttpApiSchema, OpenApi } from "effect/http-api"
import { Forbidden, NotFound, NotModified, ServiceUnavailable, TooManyRequests, ValidationError } from "./Errors.ts"
import { Caller, RequiredScope, Unauthorized } from "./Middleware.ts"

/** What a new credential is: its kind and, for a token, its role (an API secret always reads and writes). */
export const NightscoutCredentialInput = Schema.Struct({
  kind: NightscoutCredentialKind,
  role: Schema.optional(NightscoutRole).annotate({
    description: "for a token: readable (default) or uploader; an api_secret is always an uploader"
  })
})
export type NightscoutCredentialInput = typeof NightscoutCredentialInput.Type

/** A new credential as answered once: the view and the secret or token itself, never shown again. */
export const NightscoutCredentialCreated = Schema.Struct({
  ...NightscoutCredentialView.fields,
  api_secret: Schema.optional(Schema.String).annotate({
    description: "the API secret, for an api_secret: set it as the tool's API_SECRET; shown only now"
  }),
  token: Schema.optional(Schema.String).annotate({
    description: "the access token, for a token: the tool sends it as ?token=; shown only now"
  })
}).pipe(HttpApiSchema.status(201))
export type NightscoutCredentialCreated = typeof NightscoutCredentialCreated.Type

export const NightscoutCredentialList = Schema.Struct({ items: Schema.Array(NightscoutCredentialView) })

/**
 * The caller's credentials for Nightscout's tools (xDrip+, Loop, Nightguard...): each maps to exactly this
 * DexMon user, and is stored only as digests.
 */
export class NightscoutCredentialsGroup extends HttpApiGroup.make("nightscoutCredentials")
  .add(
    HttpApiEndpoint.post("create", "/nightscout/credentials", {
      payload: NightscoutCredentialInput,
      success: NightscoutCredentialCreated,
      error: [ValidationError, Forbidden, ServiceUnavailable]
    }).annotateMerge(
      OpenApi.annotations({
        summary:
          "Create an API secret or an access token for Nightscout's tools (needs glucose:read too); the secret or token is shown once"
      })
    ),
    HttpApiEndpoint.get("list", "/nightscout/credentials", {
      success: NightscoutCredentialList,
      error: ServiceUnavailable
    }).annotateMerge(
      OpenApi.annotations({ summary: "The caller's Nightscout credentials, oldest first, without secrets" })
    ),
    HttpApiEndpoint.delete("revoke", "/nightscout/credentials/:credential_id", {
      params: { credential_id: NightscoutCredentialId },
      success: HttpApiSchema.NoContent,
      error: [NotFound, ServiceUnavailable]
    }).annotateMerge(OpenApi.annotations({ summary: "Revoke a credential: it authenticates nothing from now on" }))
  )
  .middleware(Caller)
  .annotate(RequiredScope, "glucose:write")
  .prefix("/api/v1")
  .annotateMerge(
    OpenApi.annotations({
      title: "Nightscout credentials",
      description: "API secrets and tokens with which Nightscout's uploaders and followers reach the caller's data"
    })
  ) {}

/** Who a Nightscout tool acts for once its credential is checked: the credential's owner and role. */
export class NightscoutCurrentCaller extends Context.Service<
  NightscoutCurrentCaller,
  {
    readonly userId: UserId
    readonly role: NightscoutRole
    readonly credentialId: NightscoutCredentialId
  }
>()("dexmon/api/NightscoutCurrentCaller") {}

/**
 * Authenticates a Nightscout tool as Nightscout does: the `api-secret` header (the SHA-1 or SHA-512 hex of the
 * API secret, or a token's SHA-1), `?secret=`, `?token=`, or a bearer JWT from
 * `/api/v2/authorization/request/<token>`. 401 when none is presented or none matches a credential.
 */
export class NightscoutAuthentication extends HttpApiMiddleware.Service<
  NightscoutAuthentication,
  { provides: NightscoutCurrentCaller }
>()("dexmon/api/NightscoutAuthentication", {
  error: [Unauthorized, TooManyRequests, ServiceUnavailable]
}) {}

/**
 * A Nightscout entry as posted. Only these fields are read; any other is kept in the echo and otherwise ignored,
 * as Nightscout stores what it is given.
 */
export const NightscoutEntryInput = Schema.Struct({
  type: Schema.optional(Schema.String).annotate({
    description: "sgv (a sensor reading), mbg (a meter reading: a MANUAL reading) or cal (not kept); sgv by default"
  }),
  sgv: Schema.optional(Schema.Finite).annotate({
    description: "mg/dL; 39 means LO and 401 HI (kept as those values); below 39 a device error code (not kept)"
  }),
  mbg: Schema.optional(Schema.Finite).annotate({ description: "a meter reading in mg/dL, for type mbg" }),
  date: Schema.optional(Schema.Finite).annotate({
    description: "epoch milliseconds, possibly fractional (rounded); wins over dateString"
  }),
  dateString: Schema.optional(Schema.String).annotate({
    description: "ISO-8601 with an offset (Z, +01:00 or +0100); read when date is absent"
  }),
  device: Schema.optional(Schema.String).annotate({
    description: "the uploader's device name: with the caller it makes the sensor id (see the README)"
  }),
  _id: Schema.optional(Schema.String).annotate({ description: "kept in the echo; one is made when absent" })
}).annotate({ identifier: "NightscoutEntry" })
export type NightscoutEntryInput = typeof NightscoutEntryInput.Type

/** A posted entry echoed back, in the order posted, with its `_id` and what DexMon did with it. */
export const NightscoutEntryEcho = Schema.Record(Schema.String, Schema.Unknown).annotate({
  identifier: "NightscoutEntryEcho",
  description:
    "the entry as posted, with _id; dexmon.stored says whether it became a reading, dexmon.reason why not when it did not"
})

/** The raw body of an entries post: JSON, an entry or an array of them, gzip-encoded or not. */
const EntriesBody = Schema.Uint8Array.annotate({
  description: "one NightscoutEntry or an array of them, as JSON; Content-Encoding: gzip is accepted"
}).pipe(HttpApiSchema.asUint8Array({ contentType: "application/json" }))

const postEntries = (name: "postEntries" | "postEntriesJson", path: "/entries" | "/entries.json") =>
  HttpApiEndpoint.post(name, path, {
    payload: EntriesBody,
    success: Schema.Array(NightscoutEntryEcho),
    error: [ValidationError, Unauthorized, Forbidden, ServiceUnavailable]
  }).annotateMerge(
    OpenApi.annotations({
      summary:
        "Post Nightscout entries (sgv, mbg, cal) into DexMon's pipeline; answers every entry in order, with _id (needs an api_secret or an uploader token)"
    })
  )

/** An entry as the Nightscout endpoints serve it: a DexMon reading in Nightscout's shape, in mg/dL. */
export const NightscoutEntry = Schema.Struct({
  _id: Schema.String.annotate({
    description: "24 hex digits from the sensor, time and type (what a post without _id was answered)"
  }),
  device: Schema.String.annotate({ description: "the device the sensor id was made from, or the sensor id itself" }),
  date: Schema.Number.annotate({ description: "epoch milliseconds" }),
  dateString: Schema.String.annotate({ description: "ISO-8601 in UTC" }),
  sysTime: Schema.String,
  utcOffset: Schema.Int,
  type: Schema.Literals(["sgv", "mbg"]),
  sgv: Schema.optional(Schema.Number).annotate({ description: "mg/dL, for sgv: 39 is LO and 401 HI" }),
  mbg: Schema.optional(Schema.Number).annotate({ description: "mg/dL, for mbg (a manual reading)" }),
  direction: Schema.optional(Schema.String).annotate({
    description: "DexMon's trend as Nightscout names it: DoubleUp ... DoubleDown, or NOT COMPUTABLE"
  }),
  trend: Schema.optional(Schema.Int).annotate({
    description: "the same as a number: 1 DoubleUp ... 7 DoubleDown, 8 NOT COMPUTABLE"
  }),
  delta: Schema.optional(Schema.NullOr(Schema.Number)).annotate({
    description: "mg/dL since the sensor's previous reading within 15 minutes; null without one"
  })
}).annotate({ identifier: "NightscoutEntryOut" })
export type NightscoutEntry = typeof NightscoutEntry.Type

/** `count` of an entries read: Nightscout's default is 10. */
const EntriesQuery = {
  count: Schema.optional(
    Schema.NumberFromString.check(
      Schema.isInt(),
      Schema.isBetween({ minimum: 1, maximum: 10_000 }, { message: "must be an integer from 1 to 10000" })
    )
  ).annotate({ description: "how many entries, newest first (default 10)" })
}

const entriesRead = <const Name extends string, const Path extends `/${string}`>(
  name: Name,
  path: Path,
  summary: string
) =>
  HttpApiEndpoint.get(name, path, {
    query: EntriesQuery,
    success: Schema.Array(NightscoutEntry),
    error: [ValidationError, NotModified, ServiceUnavailable]
  }).annotateMerge(OpenApi.annotations({ summary }))

const FIND =
  "newest first; find[date|dateString|sgv][$gte|$gt|$lte|$lt|$eq] (and find[sgv][$in]=a|b) filter, the last 4 days when no date is given; If-Modified-Since answers 304"

/** What `GET /api/v1/status.json` answers: enough of Nightscout's for its clients (units, thresholds, version). */
export const NightscoutStatus = Schema.Struct({
  status: Schema.Literal("ok"),
  name: Schema.String,
  version: Schema.String,
  serverTime: Schema.String,
  serverTimeEpoch: Schema.Number,
  apiEnabled: Schema.Boolean,
  careportalEnabled: Schema.Boolean,
  boluscalcEnabled: Schema.Boolean,
  settings: Schema.Struct({
    units: Schema.Literals(["mg/dl", "mmol"]),
    timeFormat: Schema.Int,
    enable: Schema.Array(Schema.String),
    thresholds: Schema.Struct({
      bgHigh: Schema.Number.annotate({ description: "DexMon's very high boundary, 250 mg/dL" }),
      bgTargetTop: Schema.Number.annotate({ description: "the user's HIGH alert threshold" }),
      bgTargetBottom: Schema.Number.annotate({ description: "the user's LOW alert threshold" }),
      bgLow: Schema.Number.annotate({ description: "the user's URGENT_LOW threshold" })
    })
  }),
  extendedSettings: Schema.Struct({}),
  authorized: Schema.NullOr(Schema.Unknown)
}).annotate({ identifier: "NightscoutStatus" })
export type NightscoutStatus = typeof NightscoutStatus.Type

/** A sensor's latest device status as the Nightscout endpoints serve it. */
export const NightscoutDeviceStatusOut = Schema.Struct({
  _id: Schema.String,
  device: Schema.String,
  created_at: Schema.String.annotate({ description: "ISO-8601 in UTC" }),
  uploaderBattery: Schema.optional(Schema.Number).annotate({ description: "percent" }),
  uploader: Schema.optional(Schema.Unknown).annotate({ description: "the uploader object as posted" })
}).annotate({ identifier: "NightscoutDeviceStatus" })
export type NightscoutDeviceStatusOut = typeof NightscoutDeviceStatusOut.Type

const deviceStatusRead = <const Name extends string, const Path extends `/${string}`>(name: Name, path: Path) =>
  HttpApiEndpoint.get(name, path, {
    query: EntriesQuery,
    success: Schema.Array(NightscoutDeviceStatusOut),
    error: ServiceUnavailable
  }).annotateMerge(
    OpenApi.annotations({
      summary: "The latest device status of each of the user's uploaders' sensors, newest first (count, default 10)"
    })
  )

/** What `GET /api/v1/experiments/test` answers a credential that may post: Loop checks it before uploading. */
export const NightscoutTestResult = Schema.Struct({ status: Schema.Literal("ok") })

/**
 * Nightscout's API v1 as its uploaders use it, on the same pipeline as DexMon's own: entries go through the
 * receiver's ingestion (validation, ownership, event log). Every response carries `Accept-Encoding: gzip`, which
 * xDrip+ waits for before it compresses.
 */
export class NightscoutGroup extends HttpApiGroup.make("nightscout")
  .add(
    postEntries("postEntries", "/entries"),
    postEntries("postEntriesJson", "/entries.json"),
    entriesRead("entries", "/entries", `Entries, ${FIND}`),
    entriesRead("entriesJson", "/entries.json", `Entries as JSON, ${FIND}`),
    entriesRead("entriesCsv", "/entries.csv", `Entries as CSV (dateString, date, sgv, direction, device), ${FIND}`),
    entriesRead("entriesTsv", "/entries.tsv", `Entries tab-separated, ${FIND}`),
    entriesRead("entriesTxt", "/entries.txt", `Entries tab-separated as text, ${FIND}`),
    HttpApiEndpoint.get("entriesSpec", "/entries/:spec", {
      params: { spec: Schema.String },
      query: EntriesQuery,
      success: Schema.Array(NightscoutEntry),
      error: [ValidationError, NotFound, NotModified, ServiceUnavailable]
    }).annotateMerge(
      OpenApi.annotations({
        summary: `Entries of one type: sgv, mbg or current (the newest sgv), each optionally .json, .csv, .tsv or .txt; ${FIND}`
      })
    ),
    HttpApiEndpoint.get("status", "/status.json", {
      success: NightscoutStatus,
      error: ServiceUnavailable
    }).annotateMerge(
      OpenApi.annotations({
        summary: "Nightscout's status: version, units and the thresholds from the user's alert settings"
      })
    ),
    HttpApiEndpoint.post("postDeviceStatus", "/devicestatus", {
      payload: EntriesBody,
      success: Schema.Array(NightscoutEntryEcho),
      error: [ValidationError, Unauthorized, ServiceUnavailable]
    }).annotateMerge(
      OpenApi.annotations({
        summary:
          "Take an uploader's device status (one or an array, as xDrip+ and Loop send them): its uploader fields and battery are kept on the device's sensor"
      })
    ),
    deviceStatusRead("deviceStatus", "/devicestatus"),
    deviceStatusRead("deviceStatusJson", "/devicestatus.json"),
    HttpApiEndpoint.get("experimentsTest", "/experiments/test", {
      success: NightscoutTestResult,
      error: Unauthorized
    }).annotateMerge(
      OpenApi.annotations({
        summary: "200 when the credential may post entries (Loop's check); 401 when it is not valid or only reads"
      })
    )
  )
  .middleware(NightscoutAuthentication)
  .prefix("/api/v1")
  .annotateMerge(
    OpenApi.annotations({
      title: "Nightscout",
      description:
        "Nightscout's API v1 for its uploaders and followers, authenticated by a Nightscout credential: the api-secret header (SHA-1 hex of the API secret), ?secret=, ?token= or a bearer JWT from /api/v2/authorization/request/{token}"
    })
  ) {}

/** What `/api/v2/authorization/request/<token>` answers: a JWT standing for the token, as Nightscout's does. */
export const NightscoutAuthorizationGrant = Schema.Struct({
  token: Schema.String.annotate({ description: "a JWT to send as Authorization: Bearer on the Nightscout endpoints" }),
  sub: Schema.String.annotate({ description: "the access token's name: its role" }),
  permissionGroups: Schema.Array(Schema.Array(Schema.String)),
  iat: Schema.Int.annotate({ description: "issued at, epoch seconds" }),
  exp: Schema.Int.annotate({ description: "expires at, epoch seconds" })
})
export type NightscoutAuthorizationGrant = typeof NightscoutAuthorizationGrant.Type

/** Nightscout's token exchange: an access token (or API secret) in the path for a short-lived JWT. */
export class NightscoutAuthorizationGroup extends HttpApiGroup.make("nightscoutAuthorization")
  .add(
    HttpApiEndpoint.get("request", "/request/:token", {
      params: { token: Schema.String },
      success: NightscoutAuthorizationGrant,
      error: [Unauthorized, TooManyRequests, ServiceUnavailable]
    }).annotateMerge(
      OpenApi.annotations({ summary: "Exchange a Nightscout access token for a JWT (401 for an unknown token)" })
    )
  )
  .prefix("/api/v2/authorization")
  .annotateMerge(OpenApi.annotations({ title: "Nightscout authorization" })) {}
