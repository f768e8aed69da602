import { AlertType, UserId, type Webhook, WebhookId } from "@dexmon/domain"
import { PgTypes } from "@effect/sql-pg"
import { Effect, Layer, Option, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { runMigrations } from "../postgres/Migrations.ts"
import { OID, pgArray } from "../postgres/PgArrays.ts"
import { failureOf } from "../StoreFailure.ts"
import { WebhookStore, WebhookStoreError } from "./WebhookStore.ts"

const migrations = {
  "0001_webhooks": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    // `kinds` NULL is "every kind", unlike an empty array ("none").
    yield* sql`CREATE TABLE webhooks (
      id uuid PRIMARY KEY,
      user_id text NOT NULL,
      url text NOT NULL,
      kinds text[],
      secret text NOT NULL,
      created_at timestamptz NOT NULL
    )`
    // `list` reads a user's endpoints in this order; `get`, `remove` and `rotateSecret` go by the primary key.
    yield* sql`CREATE INDEX webhooks_by_user ON webhooks (user_id, created_at)`
  })
}

const failWith = failureOf((fields) => new WebhookStoreError(fields))

const WebhookRow = Schema.Struct({
  id: WebhookId,
  user_id: UserId,
  url: Schema.String,
  kinds: Schema.NullOr(Schema.Array(AlertType)),
  secret: Schema.String,
  created_at: Schema.Number
})

const decodeRows = (operation: string) => (rows: unknown) =>
  Schema.decodeUnknownEffect(Schema.Array(WebhookRow))(rows).pipe(Effect.mapError(failWith(operation)))

/** Webhook endpoints in one PostgreSQL table, keyed by their id. */
export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* runMigrations("webhooks", migrations)

  const columns = sql`id::text AS id, user_id, url, kinds, secret,
    floor(extract(epoch FROM created_at) * 1000)::float8 AS created_at`

  const first = (rows: ReadonlyArray<Webhook>) => Option.fromNullishOr(rows[0])

  /** A plain insert: ids are random UUIDs, so a duplicate is a caller's bug, refused by the primary key. */
  const register = Effect.fn("WebhookStore.register")(function* (webhook: Webhook) {
    yield* sql`INSERT INTO webhooks (id, user_id, url, kinds, secret, created_at)
      VALUES (${webhook.id}::uuid, ${webhook.user_id}, ${webhook.url},
        ${webhook.kinds === null ? null : pgArray(webhook.kinds, OID.text)}::text[], ${webhook.secret},
        ${PgTypes.timestamptz(webhook.created_at)})`.pipe(Effect.mapError(failWith("register")))
  })

  const list = Effect.fn("WebhookStore.list")(function* (userId: UserId) {
    return yield* sql`SELECT ${columns} FROM webhooks WHERE user_id = ${userId} ORDER BY created_at, id`.pipe(
      Effect.mapError(failWith("list")),
      Effect.flatMap(decodeRows("list"))
    )
  })

  const listFor = Effect.fn("WebhookStore.listFor")(function* (userIds: ReadonlyArray<UserId>) {
    const byUser = new Map<UserId, Array<Webhook>>()
    if (userIds.length === 0) return byUser
    const rows = yield* sql`
      SELECT ${columns} FROM webhooks WHERE user_id = ANY(${pgArray([...new Set(userIds)], OID.text)}::text[])
      ORDER BY user_id, created_at, id`.pipe(
      Effect.mapError(failWith("listFor")),
      Effect.flatMap(decodeRows("listFor"))
    )
    for (const webhook of rows) {
      const mine = byUser.get(webhook.user_id) ?? []
      mine.push(webhook)
      byUser.set(webhook.user_id, mine)
    }
    return byUser
  })

  const get = Effect.fn("WebhookStore.get")(function* (userId: UserId, id: WebhookId) {
    const rows = yield* sql`SELECT ${columns} FROM webhooks WHERE id = ${id}::uuid AND user_id = ${userId}`.pipe(
      Effect.mapError(failWith("get")),
      Effect.flatMap(decodeRows("get"))
    )
    return first(rows)
  })

  const byId = Effect.fn("WebhookStore.byId")(function* (id: WebhookId) {
    const rows = yield* sql`SELECT ${columns} FROM webhooks WHERE id = ${id}::uuid`.pipe(
      Effect.mapError(failWith("byId")),
      Effect.flatMap(decodeRows("byId"))
    )
    return first(rows)
  })

  const remove = Effect.fn("WebhookStore.remove")(function* (userId: UserId, id: WebhookId) {
    const rows = yield* sql`DELETE FROM webhooks WHERE id = ${id}::uuid AND user_id = ${userId} RETURNING id`.pipe(
      Effect.mapError(failWith("remove"))
    )
    return rows.length > 0
  })

  const rotateSecret = Effect.fn("WebhookStore.rotateSecret")(function* (
    userId: UserId,
    id: WebhookId,
    secret: string
  ) {
    const rows = yield* sql`UPDATE webhooks SET secret = ${secret}
      WHERE id = ${id}::uuid AND user_id = ${userId}
      RETURNING ${columns}`.pipe(Effect.mapError(failWith("rotateSecret")), Effect.flatMap(decodeRows("rotateSecret")))
    return first(rows)
  })

  const ping = sql`SELECT 1`.pipe(Effect.asVoid, Effect.mapError(failWith("ping")))

  return WebhookStore.of({ register, list, listFor, get, byId, remove, rotateSecret, ping })
})

/** Webhook endpoints on whatever PostgreSQL the `SqlClient` points at. */
export const layer = Layer.effect(WebhookStore, make)
