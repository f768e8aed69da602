import { S3ServiceException } from "@aws-sdk/client-s3"
import { assert, describe, it } from "@effect/vitest"
import cassandra from "cassandra-driver"
import { Effect } from "effect"
import {
  ConnectionError,
  ConstraintError,
  DeadlockError,
  LockTimeoutError,
  SerializationError,
  SqlError,
  type SqlErrorReason,
  SqlSyntaxError,
  StatementTimeoutError,
  UniqueViolation,
  UnknownError
} from "effect/sql/SqlError"
import { isTransient as isTransientCassandra } from "../src/alert-store/CassandraSession.ts"
import { failureOf, isTransientCause, ReadingStoreError, S3ArchiveStore } from "../src/index.ts"

/**
 * A `SqlError` shaped as `@effect/sql-pg` 4.0.5 builds it from a server's ErrorResponse: the driver
 * error is an `Error` carrying the response's fields (`code` is the SQLSTATE), and the reason is
 * chosen by the driver's SQLSTATE table (its internal `classifySqlState`, mirrored here).
 */
const pgError = (code: string, serverMessage: string, operation = "query"): SqlError => {
  const cause = Object.assign(new Error(serverMessage), { severity: "FATAL", code, message: serverMessage })
  const props = { cause, message: "PgConnection: Query failed", operation }
  const reason: SqlErrorReason = code.startsWith("08")
    ? new ConnectionError(props)
    : code.startsWith("42")
      ? new SqlSyntaxError(props)
      : code === "23505"
        ? new UniqueViolation({ ...props, constraint: "glucose_readings_identity" })
        : code.startsWith("23")
          ? new ConstraintError(props)
          : code === "40P01"
            ? new DeadlockError(props)
            : code === "40001"
              ? new SerializationError(props)
              : code === "55P03"
                ? new LockTimeoutError(props)
                : code === "57014"
                  ? new StatementTimeoutError(props)
                  : new UnknownError(props)
  return new SqlError({ reason })
}

/** A Node socket error as `net` raises it, under a reason that does not call itself retryable: the code alone decides. */
const socketError = (code: string, operation: "connect" | "query") =>
  new SqlError({
    reason: new UnknownError({
      cause: Object.assign(new Error(`read ${code}`), { code, errno: -104, syscall: "read" }),
      message: "PgConnection: socket failed",
      operation
    })
  })

const asReadingStoreError = failureOf((fields) => new ReadingStoreError(fields))("upsert")

describe("isTransientCause: PostgreSQL failures of the server, not of the event, are waited out", () => {
  it.effect.each([
    ["57P01", "terminating connection due to administrator command"],
    ["57P02", "terminating connection because of crash of another server process"],
    ["57P03", "the database system is starting up"],
    ["57P03", "the database system is in recovery mode"],
    ["57P03", "the database system is not accepting connections"],
    ["57P05", "terminating connection due to idle-session timeout"],
    ["53300", "sorry, too many clients already"],
    ["53200", "out of memory"],
    ["53100", "could not extend file: No space left on device"],
    ["25006", "cannot execute INSERT in a read-only transaction"],
    ["57014", "canceling statement due to statement timeout"],
    ["40001", "could not serialize access due to concurrent update"],
    ["40P01", "deadlock detected"],
    ["40003", "statement completion unknown"],
    ["55P03", "could not obtain lock on row"],
    ["08006", "connection failure"],
    ["08001", "could not connect to server"],
    ["08P01", "protocol violation"],
    ["28P01", 'password authentication failed for user "dexmon"'],
    ["28000", "no pg_hba.conf entry for host"],
    ["42501", "permission denied for table glucose_readings"],
    ["3D000", 'database "dexmon" does not exist']
  ] as const)("%s %s: transient", ([code, serverMessage]) =>
    Effect.sync(() => {
      for (const operation of ["connect", "query"]) {
        const error = pgError(code, serverMessage, operation)
        assert.isTrue(isTransientCause(error), `${code} at ${operation}`)
        const portError = asReadingStoreError(error)
        assert.isTrue(portError.transient, `${code} at ${operation}: the port error says transient`)
        assert.include(portError.message, serverMessage)
      }
    })
  )

  it.effect.each(["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN"])(
    "socket %s: transient",
    (code) =>
      Effect.sync(() => {
        assert.isTrue(isTransientCause(socketError(code, "connect")))
        assert.isTrue(isTransientCause(socketError(code, "query")))
        assert.isTrue(isTransientCause(Object.assign(new Error(code), { code })), "a bare Node error")
      })
  )

  it.effect.each([
    ["23505", "duplicate key value violates unique constraint"],
    ["23514", 'no partition of relation "glucose_readings" found for row'],
    ["23502", 'null value in column "sensor_id" violates not-null constraint'],
    ["22P02", "invalid input syntax for type uuid"],
    ["22003", "value out of range"],
    ["22008", "date/time field value out of range"],
    ["42601", "syntax error at or near"],
    ["42P01", 'relation "glucose_readings" does not exist'],
    ["57P04", 'database "dexmon" does not exist'],
    ["XX000", "internal error"]
  ] as const)("%s %s: permanent (the event or the statement cannot be applied)", ([code, serverMessage]) =>
    Effect.sync(() => {
      const error = pgError(code, serverMessage)
      assert.isFalse(isTransientCause(error), code)
      assert.isFalse(asReadingStoreError(error).transient, code)
    })
  )

  it.effect("a code that merely starts like a transient class is not taken for one", () =>
    Effect.sync(() => {
      assert.isFalse(isTransientCause(Object.assign(new Error("x"), { code: "0800" })))
      assert.isFalse(isTransientCause(Object.assign(new Error("x"), { code: "530000" })))
      assert.isFalse(
        isTransientCause(Object.assign(new Error("x"), { code: 57 })),
        "a numeric code (kafkajs, Cassandra)"
      )
    })
  )

  it.effect("kafkajs' `retriable`, at any depth of the cause chain, still counts", () =>
    Effect.sync(() => {
      const retriable = Object.assign(new Error("leader not available"), { retriable: true })
      assert.isTrue(isTransientCause(retriable))
      assert.isTrue(isTransientCause(Object.assign(new Error("gave up"), { retriable: false, cause: retriable })))
      assert.isFalse(isTransientCause(Object.assign(new Error("bad record"), { retriable: false })))
    })
  )

  it.effect("a cause chain that points at itself ends", () =>
    Effect.sync(() => {
      const looped: { message: string; cause?: unknown } = { message: "loop" }
      looped.cause = looped
      assert.isFalse(isTransientCause(looped))
      assert.isFalse(isTransientCause(undefined))
      assert.isFalse(isTransientCause("a string"))
    })
  )
})

describe("CassandraSession.isTransient: an unavailable, overloaded or timing-out cluster is waited out", () => {
  const { errors, types } = cassandra
  const codes = types.responseErrorCodes
  it.effect.each([
    ["unavailable", new errors.ResponseError(codes.unavailableException, "Cannot achieve consistency level QUORUM")],
    ["overloaded", new errors.ResponseError(codes.overloaded, "Server is overloaded")],
    ["writeTimeout", new errors.ResponseError(codes.writeTimeout, "Operation timed out - received only 1 responses")],
    ["readTimeout", new errors.ResponseError(codes.readTimeout, "Operation timed out - received only 0 responses")],
    ["isBootstrapping", new errors.ResponseError(codes.isBootstrapping, "Cannot read from a bootstrapping node")],
    ["writeFailure", new errors.ResponseError(codes.writeFailure, "Operation failed - received 0 responses")],
    ["readFailure", new errors.ResponseError(codes.readFailure, "Operation failed - received 0 responses")],
    ["truncateError", new errors.ResponseError(codes.truncateError, "Error during truncate")],
    ["serverError", new errors.ResponseError(codes.serverError, "java.lang.RuntimeException")],
    ["NoHostAvailable", new errors.NoHostAvailableError({ "127.0.0.1:9042": new Error("connect ECONNREFUSED") })],
    ["OperationTimedOut", new errors.OperationTimedOutError("The host 127.0.0.1:9042 did not reply before timeout")],
    ["BusyConnection", new errors.BusyConnectionError("127.0.0.1:9042", 2048, 1)],
    ["a closed socket", Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" })],
    ["unauthorized", new errors.ResponseError(codes.unauthorized, "User has no MODIFY permission")],
    [
      "badCredentials",
      new errors.ResponseError(codes.badCredentials, "Provided username and/or password are incorrect")
    ]
  ] as const)("%s: transient", ([, error]) => Effect.sync(() => assert.isTrue(isTransientCassandra(error))))

  it.effect.each([
    ["syntaxError", new errors.ResponseError(codes.syntaxError, "line 1:0 no viable alternative")],
    ["invalid", new errors.ResponseError(codes.invalid, "Invalid STRING constant")],
    ["configError", new errors.ResponseError(codes.configError, "Cannot add existing keyspace")],
    ["alreadyExists", new errors.ResponseError(codes.alreadyExists, "Table already exists")],
    ["protocolError", new errors.ResponseError(codes.protocolError, "Invalid or unsupported protocol version")],
    ["a value the driver cannot encode", new TypeError("Not a valid bigint, expected Long/Number/String/Buffer")],
    ["an argument the driver refuses", new errors.ArgumentError("Invalid parameter")],
    ["a feature the cluster lacks", new errors.NotSupportedError("Batch is not supported")]
  ] as const)("%s: permanent", ([, error]) => Effect.sync(() => assert.isFalse(isTransientCassandra(error))))
})

describe("S3ArchiveStore.isTransient: throttling, 5xx and network failures are waited out", () => {
  const s3Error = (name: string, status: number) =>
    new S3ServiceException({
      name,
      $fault: status >= 500 ? "server" : "client",
      $metadata: { httpStatusCode: status, requestId: "r" },
      message: name
    })
  it.effect.each([
    ["SlowDown 503", s3Error("SlowDown", 503)],
    ["InternalError 500", s3Error("InternalError", 500)],
    ["ServiceUnavailable 503", s3Error("ServiceUnavailable", 503)],
    ["a gateway's 502", s3Error("BadGateway", 502)],
    ["a gateway's 504", s3Error("GatewayTimeout", 504)],
    ["429", s3Error("TooManyRequests", 429)],
    ["Throttling 400", s3Error("Throttling", 400)],
    ["ThrottlingException 400", s3Error("ThrottlingException", 400)],
    ["RequestLimitExceeded 400", s3Error("RequestLimitExceeded", 400)],
    ["RequestTimeout 400", s3Error("RequestTimeout", 400)],
    ["OperationAborted 409", s3Error("OperationAborted", 409)],
    ["RequestTimeTooSkewed 403", s3Error("RequestTimeTooSkewed", 403)],
    [
      "an error the SDK marks $retryable",
      Object.assign(s3Error("SomethingNew", 400), { $retryable: { throttling: true } })
    ],
    ["a refused connection (no $metadata)", Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" })],
    ["a timeout (no $metadata)", Object.assign(new Error("socket hang up"), { name: "TimeoutError" })],
    ["a response with no status", Object.assign(new Error("?"), { $metadata: {} })]
  ] as const)("%s: transient", ([, error]) => Effect.sync(() => assert.isTrue(S3ArchiveStore.isTransient(error))))

  it.effect.each([
    ["NoSuchKey 404", s3Error("NoSuchKey", 404)],
    ["NoSuchBucket 404", s3Error("NoSuchBucket", 404)],
    ["AccessDenied 403", s3Error("AccessDenied", 403)],
    ["InvalidAccessKeyId 403", s3Error("InvalidAccessKeyId", 403)],
    ["InvalidArgument 400", s3Error("InvalidArgument", 400)],
    ["EntityTooLarge 400", s3Error("EntityTooLarge", 400)]
  ] as const)("%s: permanent", ([, error]) => Effect.sync(() => assert.isFalse(S3ArchiveStore.isTransient(error))))
})
