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

/**
 * SQLSTATEs that PostgreSQL answers while it restarts, recovers from a crash, fails over or sheds
 * load: none says anything about the statement or its values, and each passes once the server is
 * back. The SQL driver marks only some of them retryable (class 08, 40001, 40P01, 55P03, 57014);
 * the others it leaves "unknown", and without this list a consumer would dead-letter good events
 * for as long as a restart lasts.
 */
const transientSqlStates: ReadonlySet<string> = new Set([
  "57P01", // admin_shutdown: pg_terminate_backend, or a fast shutdown for a restart
  "57P02", // crash_shutdown: another backend crashed and the server resets every session
  "57P03", // cannot_connect_now: starting up, in crash recovery, or shutting down
  "57P05", // idle_session_timeout: the server closed an idle session
  "25006", // read_only_sql_transaction: a standby, or a primary being demoted, during a failover
  "57014", // query_canceled: a statement timeout under load
  "40001", // serialization_failure
  "40P01", // deadlock_detected
  "40003", // statement_completion_unknown: the connection broke before the outcome was known
  "55P03", // lock_not_available
  // A store that refuses every statement alike (credentials rotated wrong, a grant missing, the
  // database not created yet) says nothing about the event either: the consumer waits, logging why,
  // until an operator fixes it, instead of dead-lettering every event that arrives meanwhile.
  "42501", // insufficient_privilege
  "3D000" // invalid_catalog_name: the database does not exist
])

/**
 * Whole SQLSTATE classes that are transient: 08 (connection exception), 28 (authentication: see
 * above) and 53 (insufficient resources: too many connections, out of memory, disk full), where the
 * server, not the event, is what cannot go on.
 */
const transientSqlStateClasses: ReadonlyArray<string> = ["08", "28", "53"]

/**
 * Node's codes for a socket that could not connect or was cut (a server restarting, a failover
 * moving an address, a name that does not resolve for a moment).
 */
const transientSocketCodes: ReadonlySet<string> = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "ENETRESET",
  "EAI_AGAIN",
  "ENOTFOUND"
])

/** Whether a driver's `code` (a SQLSTATE or a Node socket code) names a failure that passes with time. */
export const isTransientCode = (code: string): boolean =>
  transientSqlStates.has(code) ||
  transientSocketCodes.has(code) ||
  (code.length === 5 && transientSqlStateClasses.some((sqlClass) => code.startsWith(sqlClass)))

/**
 * Whether a driver error is worth retrying, looking down its cause chain: an error marked retryable
 * (SQL errors' `isRetryable`, kafkajs' `retriable`), or one whose `code` is a SQLSTATE or socket code
 * of a server that is restarting, recovering, failing over or overloaded (`isTransientCode`). SQL
 * errors keep the server's own `code` on the driver error under `SqlError.reason.cause`.
 */
export const isTransientCause = (cause: unknown): boolean => {
  let current = cause
  for (let depth = 0; depth < 8 && Predicate.isObject(current); depth++) {
    if (Predicate.hasProperty(current, "isRetryable") && current.isRetryable === true) return true
    if (Predicate.hasProperty(current, "retriable") && current.retriable === true) return true
    if (Predicate.hasProperty(current, "code") && Predicate.isString(current.code) && isTransientCode(current.code)) {
      return true
    }
    const next: unknown = Predicate.hasProperty(current, "cause") ? current.cause : undefined
    if (next === current) return false
    current = next
  }
  return false
}

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
