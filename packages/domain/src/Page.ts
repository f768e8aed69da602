import { Schema } from "effect"

/** A page of a keyset-paginated listing; `next_cursor` is opaque and null on the last page. */
export const Page = <S extends Schema.Top>(item: S) =>
  Schema.Struct({
    items: Schema.Array(item),
    next_cursor: Schema.NullOr(Schema.String)
  })
