import type { UserId } from "@dexmon/domain"
import { Context, Schema } from "effect"
import { HttpApiMiddleware, HttpApiSecurity } from "effect/http-api"
import { Forbidden, ServiceUnavailable, TooManyRequests, ValidationError } from "./Errors.ts"

/**
 * Turns request decoding failures into a `ValidationError` naming every bad
 * field, instead of the framework's empty 400.
 */
export class RequestValidation extends HttpApiMiddleware.Service<RequestValidation>()("dexmon/api/RequestValidation", {
  error: ValidationError
}) {}

/** Who is calling: the token's subject and the scopes it grants (every scope when security is disabled). */
export class CurrentCaller extends Context.Service<
  CurrentCaller,
  {
    readonly userId: UserId
    readonly scopes: ReadonlySet<string>
  }
>()("dexmon/api/CurrentCaller") {}

/** 401: no valid bearer token; the response carries `WWW-Authenticate: Bearer`. */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()(
  "Unauthorized",
  { message: Schema.String },
  { httpApiStatus: 401 }
) {}

/** The OAuth2 scope a group's endpoints require, as an annotation of the group. */
export class RequiredScope extends Context.Service<RequiredScope, string>()("dexmon/api/RequiredScope") {}

/**
 * Authenticates the caller of every data endpoint from its bearer token,
 * checks the scope its group requires and the caller's rate limit, and
 * provides the caller as `CurrentCaller`. 503 (`ServiceUnavailable`, with
 * `Retry-After`) when the issuer's keys cannot be fetched to check the token.
 */
export class Caller extends HttpApiMiddleware.Service<
  Caller,
  {
    provides: CurrentCaller
  }
>()("dexmon/api/Caller", {
  error: [Unauthorized, Forbidden, TooManyRequests, ServiceUnavailable],
  security: { bearer: HttpApiSecurity.bearer }
}) {}
