import type { UserId } from "@dexmon/domain"
import { Context, Schema } from "effect"
import { HttpApiMiddleware } from "effect/http-api"
import { ValidationError } from "./Errors.ts"

/**
 * Turns request decoding failures into a `ValidationError` naming every bad
 * field, instead of the framework's empty 400.
 */
export class RequestValidation extends HttpApiMiddleware.Service<RequestValidation>()("dexmon/api/RequestValidation", {
  error: ValidationError
}) {}

/** Who is calling. Today a development identity; authentication replaces the middleware, not the handlers. */
export class CurrentCaller extends Context.Service<
  CurrentCaller,
  {
    readonly userId: UserId
  }
>()("dexmon/api/CurrentCaller") {}

export class Unauthorized extends Schema.TaggedError<Unauthorized>()(
  "Unauthorized",
  { message: Schema.String },
  { httpApiStatus: 401 }
) {}

/** Resolves the caller of every data endpoint and provides it as `CurrentCaller`. */
export class Caller extends HttpApiMiddleware.Service<
  Caller,
  {
    provides: CurrentCaller
  }
>()("dexmon/api/Caller", {
  error: Unauthorized
}) {}
