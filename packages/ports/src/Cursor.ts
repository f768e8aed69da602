import { InvalidCursor } from "@dexmon/domain"
import { Effect } from "effect"

/**
 * Keyset cursors: the sort key of the last item of a page, as opaque
 * base64url JSON. A cursor names a position, not an offset, so pages stay
 * stable while writes continue.
 */
export const encodeCursor = (position: ReadonlyArray<string | number>): string =>
  Buffer.from(JSON.stringify(position)).toString("base64url")

export const decodeCursor = <const S extends ReadonlyArray<"string" | "number">>(
  cursor: string,
  shape: S
): Effect.Effect<{ -readonly [K in keyof S]: S[K] extends "string" ? string : number }, InvalidCursor> =>
  Effect.try({
    try: () => {
      const position: unknown = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"))
      if (!Array.isArray(position) || position.length !== shape.length) throw new Error("wrong shape")
      shape.forEach((kind, i) => {
        if (typeof position[i] !== kind) throw new Error("wrong shape")
      })
      return position as never
    },
    catch: () => new InvalidCursor({ message: "cursor is not one this server issued" })
  })
