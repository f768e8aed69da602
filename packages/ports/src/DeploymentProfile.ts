import { Config, Effect, Schema } from "effect"

export class MissingConnectionError extends Schema.TaggedError<MissingConnectionError>()("MissingConnectionError", {
  variable: Schema.String
}) {
  override get message() {
    return `${this.variable} is required when DEXMON_PROFILE=production; embedded stores are for development only`
  }
}

/**
 * `DEXMON_PROFILE=production` forbids falling back to an embedded store: a
 * missing connection variable stops start-up instead of silently keeping data
 * on the local disk of one pod.
 */
export const deploymentProfile = Config.Literals(["development", "production"], "DEXMON_PROFILE").pipe(
  Config.withDefault("development")
)

export const requireEmbeddedAllowed = Effect.fnUntraced(function* (variable: string) {
  const profile = yield* deploymentProfile
  if (profile === "production") return yield* Effect.die(new MissingConnectionError({ variable }))
})
