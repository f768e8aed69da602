import { InvalidCursor } from "@dexmon/domain"
import { Effect } from "effect"

/**
 * Keyset cursors: the sort key of the last item of a page, as opaque
 * base64url JSON. A cursor names a position, not an offset, so pages stay
 * stable while writes continue.
 */
export const encodeCursor = (position: ReadonlyArray<string | number>): string =>
  Buffer.from(JSON.stringify(position)).toString("base64url")

/** Longer than any cursor this server issues (a timestamp and a 64-character id): refused unread. */
const MAX_CURSOR_LENGTH = 512
/**
 * Every number in a cursor is a timestamp in milliseconds, from 1970 to the end of 9999: beyond that a
 * `Date` has no ISO form or one with a 6-digit or zero year, which PostgreSQL refuses (a 503, not a 400).
 */
const MAX_TIMESTAMP = 253_402_300_799_999
/** Every string in a cursor is an id: printable, never longer than 256 (NUL would make PostgreSQL fail). */
const isIdText = (text: string) => text.length <= 256 && [...text].every((char) => char >= " " && char !== "\u007f")

/**
 * A cursor the client sends back: anything that is not a position this server could have issued is
 * `InvalidCursor` (400 naming `cursor`), never a defect. The checks are on what the stores do with a
 * position: a number becomes a `Date` (`toISOString` throws on one out of range) and a string a query
 * parameter, so each is bounded here, once, for every store. A well-formed cursor of another listing or
 * user is only a position: every query still filters on the caller's user id, so it reveals nothing.
 */
export const decodeCursor = <const S extends ReadonlyArray<"string" | "number">>(
  cursor: string,
  shape: S
): Effect.Effect<{ -readonly [K in keyof S]: S[K] extends "string" ? string : number }, InvalidCursor> =>
  Effect.try({
    try: () => {
      if (cursor.length > MAX_CURSOR_LENGTH || !/^[A-Za-z0-9_-]*$/.test(cursor)) throw new Error("not base64url")
      const position: unknown = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"))
      if (!Array.isArray(position) || position.length !== shape.length) throw new Error("wrong shape")
      shape.forEach((kind, i) => {
        const value: unknown = position[i]
        const ok =
          kind === "number"
            ? typeof value === "number" && Number.isSafeInteger(value) && value >= 0 && value <= MAX_TIMESTAMP
            : typeof value === "string" && isIdText(value)
        if (!ok) throw new Error("wrong shape")
      })
      return position as never
    },
    catch: () => new InvalidCursor({ message: "cursor is not one this server issued" })
  })
