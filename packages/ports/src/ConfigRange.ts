import { Config, ConfigProvider, Effect } from "effect"

/** A setting refused at start-up, with the message an operator reads. */
export const configRefusal = (message: string) =>
  Effect.fail(new Config.ConfigError(new ConfigProvider.SourceError({ message })))

/**
 * An integer setting with a default, refused at startup (naming the variable, the range and the value)
 * when it is outside `min`..`max`: a pool of 0 or a million is a typo, not a choice.
 */
export const intInRange = (name: string, defaultValue: number, min: number, max: number): Config.Config<number> =>
  Config.Int(name).pipe(
    Config.withDefault(defaultValue),
    Config.mapEffect((value) =>
      value >= min && value <= max
        ? Effect.succeed(value)
        : configRefusal(`${name} must be between ${min} and ${max}, got ${value}`)
    )
  )
