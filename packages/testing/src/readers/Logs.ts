import { Logger } from "effect"

/**
 * Every log line of the fibers it is provided to, kept as JSON text
 * (message, cause, annotations, spans), beside the loggers already installed:
 * a test reads what an in-process service logged.
 */
export const makeLogCapture = () => {
  const lines: Array<string> = []
  const capture = Logger.make((options) => {
    lines.push(JSON.stringify(Logger.formatStructured.log(options)))
  })
  return {
    lines,
    layer: Logger.layer([capture], { mergeWithExisting: true }),
    text: () => lines.join("\n")
  }
}
