import { readFileSync } from "node:fs"
import { Config, ConfigProvider, Effect, Option } from "effect"

/**
 * An optional PEM file named by the variable `name` (a CA bundle, a client certificate or key), read
 * when the configuration is: a path that cannot be read fails start-up as a configuration error that
 * names the variable and the path, rather than a TLS handshake failing later with a vaguer message.
 */
export const pemFile = (name: string): Config.Config<Option.Option<string>> =>
  Config.option(Config.String(name)).pipe(
    Config.mapEffect((path) =>
      Option.isNone(path)
        ? Effect.succeed(Option.none<string>())
        : Effect.try({
            try: () => Option.some(readFileSync(path.value, "utf8")),
            catch: (cause) =>
              new Config.ConfigError(
                new ConfigProvider.SourceError({
                  message: `${name}=${path.value}: the file cannot be read (${cause instanceof Error ? cause.message : String(cause)})`,
                  cause
                })
              )
          }).pipe(
            Effect.filterOrFail(
              (pem) => Option.isNone(pem) || pem.value.includes("-----BEGIN "),
              () =>
                new Config.ConfigError(
                  new ConfigProvider.SourceError({
                    message: `${name}=${path.value}: not a PEM file (no "-----BEGIN ")`
                  })
                )
            )
          )
    )
  )
