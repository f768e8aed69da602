import type { JsonSchema } from "./HostileValues.ts"

// The part of an OpenAPI 3.1 document the fuzzer reads, and its operations in a flat list.

export interface Parameter {
  readonly name: string
  readonly in: "path" | "query" | "header" | "cookie"
  readonly required?: boolean
  readonly schema?: JsonSchema
}
export interface Response {
  readonly content?: Record<string, { readonly schema?: JsonSchema }>
  readonly headers?: Record<string, { readonly required?: boolean }>
}
export interface OperationObject {
  readonly parameters?: ReadonlyArray<Parameter>
  readonly requestBody?: { readonly required?: boolean; readonly content?: Record<string, { schema?: JsonSchema }> }
  readonly responses?: Record<string, Response>
  readonly security?: ReadonlyArray<Record<string, ReadonlyArray<string>>>
}
export interface OpenApiDocument {
  readonly openapi: string
  readonly paths: Record<string, Record<string, OperationObject>>
  readonly components?: { readonly schemas?: Record<string, JsonSchema> }
  readonly security?: ReadonlyArray<Record<string, ReadonlyArray<string>>>
}

/** One method of one path, with what the fuzzer needs of it. */
export interface Operation {
  readonly id: string
  readonly method: string
  readonly path: string
  readonly parameters: ReadonlyArray<Parameter>
  readonly body: { readonly schema: JsonSchema; readonly required: boolean } | undefined
  readonly responses: Record<string, Response>
  readonly secured: boolean
}

const methods = ["get", "put", "post", "delete", "patch", "head", "options"]

export const operationsOf = (document: OpenApiDocument): Array<Operation> =>
  Object.entries(document.paths).flatMap(([path, item]) =>
    Object.entries(item)
      .filter(([method]) => methods.includes(method))
      .map(([method, operation]) => {
        const json = operation.requestBody?.content?.["application/json"]?.schema
        return {
          id: `${method.toUpperCase()} ${path}`,
          method: method.toUpperCase(),
          path,
          parameters: operation.parameters ?? [],
          body: json === undefined ? undefined : { schema: json, required: operation.requestBody?.required ?? true },
          responses: operation.responses ?? {},
          secured: (operation.security ?? document.security ?? []).some((entry) => Object.keys(entry).length > 0)
        }
      })
  )

export const derefWith =
  (document: OpenApiDocument) =>
  (schema: JsonSchema): JsonSchema => {
    let current = schema
    for (let hops = 0; current.$ref !== undefined && hops < 20; hops++) {
      const name = current.$ref.replace("#/components/schemas/", "")
      current = document.components?.schemas?.[name] ?? {}
    }
    return current
  }
