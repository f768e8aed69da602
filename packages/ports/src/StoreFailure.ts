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

/** `(operation) => (cause) => PortError`: wraps a driver failure in a port's error, keeping the cause. */
export const failureOf =
  <E>(make: (fields: { operation: string; message: string; transient: boolean; cause: unknown }) => E) =>
  (operation: string) =>
  (cause: unknown): E =>
    make({
      operation,
      message: cause instanceof Error ? cause.message : String(cause),
      transient: isTransientCause(cause),
      cause
    })
