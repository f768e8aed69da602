import { alertTypes } from "@dexmon/domain"
import { assert, describe, it } from "@effect/vitest"
import { OpenApi } from "effect/http-api"
import { DexMonApi } from "../src/index.ts"

interface Parameter {
  readonly name: string
  readonly in: string
  readonly required: boolean
  readonly schema: { readonly enum?: ReadonlyArray<string>; readonly description?: string }
}

interface JsonSchema {
  readonly description?: string
  readonly $ref?: string
  readonly properties?: Record<string, JsonSchema>
  readonly anyOf?: ReadonlyArray<JsonSchema>
}

/** A property's description, wherever the generator put it: on the property, or on the schema it refers to. */
const describedAt = (schemas: Record<string, JsonSchema>, schema: JsonSchema): string =>
  schema.description ??
  (schema.$ref === undefined ? undefined : schemas[schema.$ref.split("/").pop()!]?.description) ??
  schema.anyOf?.map((member) => describedAt(schemas, member)).find((text) => text !== "") ??
  ""

describe("the OpenAPI document generated from the one HttpApi declaration", () => {
  const spec = OpenApi.fromApi(DexMonApi) as unknown as {
    readonly paths: Record<
      string,
      Record<
        string,
        {
          readonly summary?: string
          readonly parameters: ReadonlyArray<Parameter>
          readonly responses: Record<string, unknown>
        }
      >
    >
  }

  it("lists every endpoint with its success and error statuses", () => {
    assert.deepStrictEqual(Object.keys(spec.paths).sort(), [
      "/api/v1/alert-settings",
      "/api/v1/alerts",
      "/api/v1/alerts/active",
      "/api/v1/alerts/{alert_id}",
      "/api/v1/alerts/{alert_id}/acknowledge",
      "/api/v1/alerts/{alert_id}/snooze",
      "/api/v1/devicestatus",
      "/api/v1/devicestatus.json",
      "/api/v1/entries",
      "/api/v1/entries.csv",
      "/api/v1/entries.json",
      "/api/v1/entries.tsv",
      "/api/v1/entries.txt",
      "/api/v1/entries/{spec}",
      "/api/v1/experiments/test",
      "/api/v1/glucose/manual",
      "/api/v1/glucose/sensor",
      "/api/v1/nightscout/credentials",
      "/api/v1/nightscout/credentials/{credential_id}",
      "/api/v1/readings",
      "/api/v1/readings/export",
      "/api/v1/readings/{sensor_id}/{timestamp}",
      "/api/v1/reports/agp",
      "/api/v1/sensors/{sensor_id}/owner",
      "/api/v1/sensors/{sensor_id}/stop",
      "/api/v1/statistics",
      "/api/v1/status.json",
      "/api/v1/stream",
      "/api/v1/webhooks",
      "/api/v1/webhooks/{webhook_id}",
      "/api/v1/webhooks/{webhook_id}/deliveries",
      "/api/v1/webhooks/{webhook_id}/rotate-secret",
      "/api/v1/webhooks/{webhook_id}/test",
      "/api/v2/authorization/request/{token}",
      "/healthz",
      "/readyz"
    ])
    const sensor = spec.paths["/api/v1/glucose/sensor"]!.post!
    assert.includeMembers(Object.keys(sensor.responses), ["202", "400", "503"])
    assert.includeMembers(Object.keys(spec.paths["/readyz"]!.get!.responses), ["200", "503"])
    const credentials = spec.paths["/api/v1/nightscout/credentials"]!
    assert.includeMembers(Object.keys(credentials.post!.responses), ["201", "400", "401", "503"])
    assert.includeMembers(
      Object.keys(spec.paths["/api/v1/nightscout/credentials/{credential_id}"]!.delete!.responses),
      ["204", "404"]
    )
    // Nightscout's uploaders post entries as JSON (gzip or not) and read 401 for a bad or read-only credential.
    for (const path of ["/api/v1/entries", "/api/v1/entries.json"]) {
      const entries = spec.paths[path]!.post!
      assert.includeMembers(Object.keys(entries.responses), ["200", "400", "401", "403", "429", "503"])
      const body = (entries as { readonly requestBody?: { readonly content: Record<string, unknown> } }).requestBody
      assert.deepStrictEqual(Object.keys(body?.content ?? {}), ["application/json"])
    }
    assert.includeMembers(Object.keys(spec.paths["/api/v1/experiments/test"]!.get!.responses), ["200", "401"])
    assert.includeMembers(Object.keys(spec.paths["/api/v2/authorization/request/{token}"]!.get!.responses), [
      "200",
      "401"
    ])
  })

  it("documents the statistics: units as an enum, and every field of the answer described", () => {
    const statistics = spec.paths["/api/v1/statistics"]!.get!
    assert.deepStrictEqual(
      statistics.parameters.map((p) => [p.name, p.required]),
      [
        ["from", true],
        ["to", true],
        ["sensor_id", false],
        ["units", false],
        ["tz", false]
      ]
    )
    assert.deepStrictEqual(statistics.parameters.find((p) => p.name === "units")?.schema.enum, ["mg/dL", "mmol/L"])
    assert.match(statistics.parameters.find((p) => p.name === "tz")?.schema.description ?? "", /IANA time zone/)
    assert.includeMembers(Object.keys(statistics.responses), ["200", "400", "503"])
    const schemas = (spec as unknown as { components: { schemas: Record<string, JsonSchema> } }).components.schemas
    const view = schemas.GlucoseStatistics!
    // The clinical numbers a client must not have to guess: each says what it is, in which unit.
    for (const field of [
      "cgm_active_percent",
      "data_sufficient",
      "mean",
      "standard_deviation",
      "coefficient_of_variation",
      "variability_high",
      "gmi_percent",
      "gmi_mmol_per_mol",
      "time_zone",
      "night",
      "day"
    ]) {
      assert.isNotEmpty(describedAt(schemas, view.properties![field]!), field)
    }
  })

  it("serves readings in the units asked for, each with its rate and trend described", () => {
    const list = spec.paths["/api/v1/readings"]!.get!
    const one = spec.paths["/api/v1/readings/{sensor_id}/{timestamp}"]!.get!
    for (const operation of [list, one]) {
      assert.deepStrictEqual(operation.parameters.find((p) => p.name === "units")?.schema.enum, ["mg/dL", "mmol/L"])
    }
    const schemas = (spec as unknown as { components: { schemas: Record<string, JsonSchema> } }).components.schemas
    const reading = schemas.Reading!
    for (const field of ["glucose_value", "rate", "trend", "etag"]) {
      assert.isNotEmpty(describedAt(schemas, reading.properties![field]!), field)
    }
  })

  it("serves the AGP as SVG, with its window, units and time zone as parameters", () => {
    const agp = spec.paths["/api/v1/reports/agp"]!.get! as unknown as {
      readonly parameters: ReadonlyArray<Parameter>
      readonly responses: Record<string, { readonly content?: Record<string, unknown> }>
    }
    assert.deepStrictEqual(
      agp.parameters.map((p) => [p.name, p.required]),
      [
        ["from", false],
        ["to", false],
        ["sensor_id", false],
        ["units", false],
        ["tz", false]
      ]
    )
    assert.deepStrictEqual(Object.keys(agp.responses["200"]!.content!), ["image/svg+xml"])
    assert.includeMembers(Object.keys(agp.responses), ["200", "400", "503"])
  })

  it("lists alert episodes filtered by status and kind, the open ones, and one by id", () => {
    const list = spec.paths["/api/v1/alerts"]!.get!
    const query = (name: string) => list.parameters.find((p) => p.in === "query" && p.name === name)
    assert.deepStrictEqual(
      list.parameters.map((p) => p.name),
      ["from", "to", "limit", "cursor", "status", "alert_type"]
    )
    assert.deepStrictEqual(query("status")?.schema.enum, ["ACTIVE", "RESOLVED", "BACKFILLED"])
    assert.deepStrictEqual(query("alert_type")?.schema.enum, [...alertTypes])
    assert.isFalse(query("status")?.required)
    assert.isFalse(query("alert_type")?.required)
    assert.includeMembers(Object.keys(list.responses), ["200", "400", "503"])

    const active = spec.paths["/api/v1/alerts/active"]!.get!
    assert.deepStrictEqual(active.parameters, [])
    assert.includeMembers(Object.keys(active.responses), ["200", "503"])

    const one = spec.paths["/api/v1/alerts/{alert_id}"]!.get!
    assert.deepStrictEqual(
      one.parameters.map((p) => [p.in, p.name, p.required]),
      [["path", "alert_id", true]]
    )
    assert.includeMembers(Object.keys(one.responses), ["200", "400", "404", "503"])

    for (const operation of [list, active, one]) assert.isNotEmpty(operation.summary)
  })

  it("declares the owner's controls (202, 404 for another user's) and the settings with ETag preconditions", () => {
    for (const path of ["/api/v1/alerts/{alert_id}/acknowledge", "/api/v1/alerts/{alert_id}/snooze"]) {
      const action = spec.paths[path]!.post!
      assert.includeMembers(Object.keys(action.responses), ["202", "401", "403", "404", "503"], path)
      assert.isNotEmpty(action.summary)
    }
    assert.includeMembers(Object.keys(spec.paths["/api/v1/alerts/{alert_id}/snooze"]!.post!.responses), ["400"])
    assert.includeMembers(Object.keys(spec.paths["/api/v1/sensors/{sensor_id}/stop"]!.post!.responses), ["202", "404"])
    const settings = spec.paths["/api/v1/alert-settings"]!
    assert.includeMembers(Object.keys(settings.get!.responses), ["200", "503"])
    assert.includeMembers(Object.keys(settings.put!.responses), ["200", "400", "412", "428", "503"])
    assert.deepStrictEqual(
      settings.put!.parameters.map((p) => [p.in, p.name, p.required]),
      [["header", "if-match", false]]
    )
    assert.include(JSON.stringify(settings), "#/components/schemas/AlertSettings")
    const document = JSON.stringify(
      (spec as unknown as { components: { schemas: Record<string, unknown> } }).components.schemas.AlertSettings
    )
    for (const field of ["urgent_low", "urgent_low_soon", "repeat_minutes", "quiet_hours", "time_zone"]) {
      assert.include(document, `"${field}"`)
    }
  })

  it("names JSON fields in snake_case, as the tables do", () => {
    const text = JSON.stringify(spec)
    for (const field of [
      "sensor_id",
      "glucose_value",
      "event_ids",
      "next_cursor",
      "alert_type",
      "created_at",
      "started_at",
      "ended_at",
      "extreme_value",
      "last_reading_at",
      "acknowledged_at",
      "acknowledged_by",
      "snoozed_until",
      "notification_count",
      "last_notified_at",
      "silenced_by",
      "delivery_status"
    ]) {
      assert.include(text, `"${field}"`)
    }
    assert.notInclude(text, '"sensorId"')
  })
})
