import {
  type NightscoutCredential,
  NightscoutCredentialId,
  NightscoutCredentialKind,
  NightscoutRole,
  UserId
} from "@dexmon/domain"
import { PgTypes } from "@effect/sql-pg"
import { Effect, Layer, Option, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { runMigrations } from "../postgres/Migrations.ts"
import { OID, pgArray } from "../postgres/PgArrays.ts"
import { failureOf } from "../StoreFailure.ts"
import { NightscoutCredentialStore, NightscoutCredentialStoreError } from "./NightscoutCredentialStore.ts"

const migrations = {
  "0001_nightscout_credentials": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE nightscout_credentials (
      id uuid PRIMARY KEY,
      user_id text NOT NULL,
      kind text NOT NULL CHECK (kind IN ('api_secret', 'token')),
      role text NOT NULL CHECK (role IN ('readable', 'uploader')),
      CHECK (kind = 'token' OR role = 'uploader'),
      hint text NOT NULL,
      created_at timestamptz NOT NULL
    )`
    yield* sql`CREATE INDEX nightscout_credentials_by_user ON nightscout_credentials (user_id, created_at)`
    // One row per form a client may present the credential in; revoking deletes them with it.
    yield* sql`CREATE TABLE nightscout_credential_digests (
      digest text PRIMARY KEY,
      credential_id uuid NOT NULL REFERENCES nightscout_credentials (id) ON DELETE CASCADE
    )`
    yield* sql`CREATE INDEX nightscout_credential_digests_by_credential ON nightscout_credential_digests (credential_id)`
  })
}

const failWith = failureOf((fields) => new NightscoutCredentialStoreError(fields))

const CredentialRow = Schema.Struct({
  id: NightscoutCredentialId,
  user_id: UserId,
  kind: NightscoutCredentialKind,
  role: NightscoutRole,
  hint: Schema.String,
  created_at: Schema.Number
})

const IdentityRow = Schema.Struct({
  credential_id: NightscoutCredentialId,
  user_id: UserId,
  kind: NightscoutCredentialKind,
  role: NightscoutRole
})

/** Nightscout credentials in two PostgreSQL tables: the credentials, and the digests they are found by. */
export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* runMigrations("nightscout_credentials", migrations)

  /** Both rows in one transaction: a credential is never findable without its owner, nor listed unfindable. */
  const create = Effect.fn("NightscoutCredentialStore.create")(function* (
    credential: NightscoutCredential,
    digests: ReadonlyArray<string>
  ) {
    yield* sql
      .withTransaction(
        Effect.gen(function* () {
          yield* sql`INSERT INTO nightscout_credentials (id, user_id, kind, role, hint, created_at)
            VALUES (${credential.id}::uuid, ${credential.user_id}, ${credential.kind}, ${credential.role},
              ${credential.hint}, ${PgTypes.timestamptz(credential.created_at)})`
          yield* sql`INSERT INTO nightscout_credential_digests (digest, credential_id)
            SELECT d, ${credential.id}::uuid FROM unnest(${pgArray([...digests], OID.text)}::text[]) AS d`
        })
      )
      .pipe(Effect.mapError(failWith("create")))
  })

  const list = Effect.fn("NightscoutCredentialStore.list")(function* (userId: UserId) {
    const rows = yield* sql`SELECT id::text AS id, user_id, kind, role, hint,
        floor(extract(epoch FROM created_at) * 1000)::float8 AS created_at
      FROM nightscout_credentials WHERE user_id = ${userId} ORDER BY created_at, id`.pipe(
      Effect.mapError(failWith("list"))
    )
    return yield* Schema.decodeUnknownEffect(Schema.Array(CredentialRow))(rows).pipe(Effect.mapError(failWith("list")))
  })

  const revoke = Effect.fn("NightscoutCredentialStore.revoke")(function* (userId: UserId, id: NightscoutCredentialId) {
    const rows = yield* sql`DELETE FROM nightscout_credentials WHERE id = ${id}::uuid AND user_id = ${userId}
      RETURNING id`.pipe(Effect.mapError(failWith("revoke")))
    return rows.length > 0
  })

  const authenticate = Effect.fn("NightscoutCredentialStore.authenticate")(function* (digest: string) {
    const rows = yield* sql`SELECT c.id::text AS credential_id, c.user_id, c.kind, c.role
      FROM nightscout_credential_digests d JOIN nightscout_credentials c ON c.id = d.credential_id
      WHERE d.digest = ${digest}`.pipe(Effect.mapError(failWith("authenticate")))
    const identities = yield* Schema.decodeUnknownEffect(Schema.Array(IdentityRow))(rows).pipe(
      Effect.mapError(failWith("authenticate"))
    )
    return Option.fromNullishOr(identities[0])
  })

  const ping = sql`SELECT 1`.pipe(Effect.asVoid, Effect.mapError(failWith("ping")))

  return NightscoutCredentialStore.of({ create, list, revoke, authenticate, ping })
})

/** Nightscout credentials on whatever PostgreSQL the `SqlClient` points at. */
export const layer = Layer.effect(NightscoutCredentialStore, make)
