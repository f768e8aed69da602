import { assert, describe, it } from "@effect/vitest"
import { OpenApi } from "effect/http-api"
import { DexMonApi } from "../src/index.ts"

describe("the OpenAPI document generated from the one HttpApi declaration", () => {
  const spec = OpenApi.fromApi(DexMonApi) as unknown as {
    readonly paths: Record<string, Record<string, { readonly responses: Record<string, unknown> }>>
  }

  it("lists every endpoint with its success and error statuses", () => {
    assert.deepStrictEqual(Object.keys(spec.paths).sort(), [
      "/api/v1/alerts",
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

  it("names JSON fields in snake_case, as the tables do", () => {
    const text = JSON.stringify(spec)
    for (const field of ["sensor_id", "glucose_value", "event_ids", "next_cursor", "alert_type", "created_at"]) {
      assert.include(text, `"${field}"`)
    }
    assert.notInclude(text, '"sensorId"')
  })
})
