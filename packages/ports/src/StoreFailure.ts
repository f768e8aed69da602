import { Predicate, Schema } from "effect"

/**
 * The fields every port error carries. `transient` says whether trying again
 * later can succeed (the store is down or unreachable) rather than never (the
 * data or the statement is wrong): consumers wait out a transient failure
 * without advancing, and send a permanent one to a dead-letter topic.
 */
export const StoreFailureFields = {
  operation: Schema.String,
  message: Schema.String,
  transient: Schema.Boolean,
  cause: Schema.optional(Schema.Defect())
}

/** Whether a driver error is worth retrying: SQL errors say so themselves, kafkajs errors too (`retriable`). */
export const isTransientCause = (cause: unknown): boolean =>
  (Predicate.hasProperty(cause, "isRetryable") && cause.isRetryable === true) ||
  (Predicate.hasProperty(cause, "retriable") && cause.retriable === true) ||
  (Predicate.hasProperty(cause, "cause") && cause.cause !== cause && isTransientCause(cause.cause))

/**
 * `(operation) => (cause) => PortError`: wraps a driver failure in a port's error, keeping the
 * cause. A driver whose errors do not say whether they are retryable passes its own `isTransient`.
 */
export const failureOf =
  <E>(
    make: (fields: { operation: string; message: string; transient: boolean; cause: unknown }) => E,
    isTransient: (cause: unknown) => boolean = isTransientCause
  ) =>
  (operation: string) =>
  (cause: unknown): E =>
    make({ operation, message: describeCause(cause), transient: isTransient(cause), cause })

/** The messages along a cause chain, outermost first: drivers wrap the server's own words several levels down. */
const describeCause = (cause: unknown): string => {
  const messages: Array<string> = []
  for (let current = cause, depth = 0; current !== undefined && depth < 8; depth++) {
    const message =
      current instanceof Error
        ? current.message
        : Predicate.hasProperty(current, "message")
          ? String(current.message)
          : String(current)
    if (message !== "" && !messages.includes(message)) messages.push(message)
    current = Predicate.hasProperty(current, "cause") && current.cause !== current ? current.cause : undefined
  }
  return messages.join(": ")
}
