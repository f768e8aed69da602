import { createServer } from "node:http"
import { Caller } from "@dexmon/api"
import { NodeHttpServer } from "@effect/platform-node"
import { ByteSize, Config, Effect, Layer } from "effect"
import { HttpIncomingMessage, HttpRouter } from "effect/http"
import { type HttpApi, HttpApiBuilder, type HttpApiGroup, HttpApiScalar } from "effect/http-api"
import { CallerLive } from "./Authentication.ts"
import { RequestValidationLive } from "./RequestValidationLive.ts"

/**
 * Serves an HttpApi (with `/openapi.json` and interactive docs at `/docs`) on
 * `HOST`:`PORT`. Request bodies above `DEXMON_MAX_BODY_BYTES` are refused
 * before they are read whole.
 */
export const layerHttpServer = <Id extends string, Groups extends HttpApiGroup.Constraint, E, R>(
  api: HttpApi.HttpApi<Id, Groups>,
  handlers: Layer.Layer<HttpApiGroup.ToService<Id, Groups>, E, R>
) =>
  Layer.unwrap(
    Effect.gen(function* () {
      const port = yield* Config.Port("PORT").pipe(Config.withDefault(8080))
      const host = yield* Config.String("HOST").pipe(Config.withDefault("127.0.0.1"))
      const maxBodyBytes = yield* Config.Int("DEXMON_MAX_BODY_BYTES").pipe(Config.withDefault(1_048_576))
      // Only an API with authenticated endpoints needs (and configures) the caller: health-only servers do not.
      const authenticated = Object.values(api.groups as unknown as Record<string, HttpApiGroup.Top>).some((group) =>
        Object.values(group.endpoints).some((endpoint) => endpoint.middlewares.has(Caller))
      )
      // Without authenticated endpoints nothing asks for `Caller`, so the empty layer stands in for it.
      const callerLayer = authenticated ? CallerLive : (Layer.empty as unknown as typeof CallerLive)
      const routes = Layer.mergeAll(
        HttpApiBuilder.layer(api, { openapiPath: "/openapi.json" }).pipe(
          Layer.provide(handlers),
          Layer.provide(RequestValidationLive),
          Layer.provide(callerLayer)
        ),
        HttpApiScalar.layer(api, { path: "/docs" })
      )
      return HttpRouter.serve(routes, {
        middleware: (app) => Effect.provideService(app, HttpIncomingMessage.MaxBodySize, ByteSize.bytes(maxBodyBytes))
      }).pipe(
        Layer.provide(NodeHttpServer.layer(createServer, { port, host })),
        Layer.tap(() => Effect.logInfo(`DexMon API listening on http://${host}:${port} (docs at /docs)`))
      )
    })
  )
