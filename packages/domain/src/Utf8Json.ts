import type { Effect } from "effect"

const utf8 = new TextDecoder("utf-8", { fatal: true })

/**
 * A decoder of JSON text as a decoder of message bytes: bytes that are not
 * UTF-8 reach `decode` as `undefined`, so they fail with the same
 * SchemaError as any other bad value (for the DLQ), never with a throw.
 */
export const fromUtf8 =
  <A, E, R>(decode: (text: unknown) => Effect.Effect<A, E, R>) =>
  (bytes: Uint8Array): Effect.Effect<A, E, R> => {
    let text: string | undefined
    try {
      text = utf8.decode(bytes)
    } catch {
      text = undefined
    }
    return decode(text)
  }
