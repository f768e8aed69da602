import { alertTypes } from "@dexmon/domain"
import { assert, describe, it } from "@effect/vitest"
import { OpenApi } from "effect/http-api"
import { DexMonApi } from "../src/index.ts"

interface Parameter {
  readonly name: string
  readonly in: string
  readonly required: boolean
  readonly schema: { readonly enum?: ReadonlyArray<string> }
}

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
      "/api/v1/alerts",
      "/api/v1/alerts/active",
      "/api/v1/alerts/{alert_id}",
      "/api/v1/glucose/manual",
      "/api/v1/glucose/sensor",
      "/api/v1/readings",
      "/api/v1/readings/{sensor_id}/{timestamp}",
      "/healthz",
      "/readyz"
    ])
    const sensor = spec.paths["/api/v1/glucose/sensor"]!.post!
    assert.includeMembers(Object.keys(sensor.responses), ["202", "400", "503"])
    assert.includeMembers(Object.keys(spec.paths["/readyz"]!.get!.responses), ["200", "503"])
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
      "last_reading_at"
    ]) {
      assert.include(text, `"${field}"`)
    }
    assert.notInclude(text, '"sensorId"')
  })
})
