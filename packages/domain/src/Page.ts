import { Schema } from "effect"

/** A page of a keyset-paginated listing; `next_cursor` is opaque and null on the last page. */
export const Page = <S extends Schema.Top>(item: S) =>
  Schema.Struct({
    items: Schema.Array(item),
    next_cursor: Schema.NullOr(Schema.String)
  })

/** 400: a pagination cursor that this server did not issue. */
export class InvalidCursor extends Schema.TaggedError<InvalidCursor>()(
  "InvalidCursor",
  { message: Schema.String },
  { httpApiStatus: 400 }
) {}
