import { createHash, randomBytes } from "node:crypto"
import { Schema } from "effect"
import type { UserId } from "./Identifiers.ts"
import { IsoTimestamp } from "./Timestamp.ts"

/** A Nightscout credential's id: a random UUID, issued when it is created. */
export const NightscoutCredentialId = Schema.String.check(Schema.isUUID()).pipe(Schema.brand("NightscoutCredentialId"))
export type NightscoutCredentialId = typeof NightscoutCredentialId.Type

/**
 * How a Nightscout tool authenticates: with the site's API secret (an uploader like xDrip+ or Loop sends its
 * SHA-1 in the `api-secret` header) or with an access token (`?token=`, or the JWT it is exchanged for).
 */
export const NightscoutCredentialKind = Schema.Literals(["api_secret", "token"]).annotate({
  description: "api_secret: Nightscout's API_SECRET (read and write); token: an access token with a role"
})
export type NightscoutCredentialKind = typeof NightscoutCredentialKind.Type

/**
 * What a credential may do: `readable` (Nightscout's role name) only reads; `uploader` (DexMon's own) also
 * posts. An API secret always reads and writes, as Nightscout's does, so it is created as an uploader.
 */
export const NightscoutRole = Schema.Literals(["readable", "uploader"]).annotate({
  description: "readable: read only (Nightscout's role); uploader: read and post entries"
})
export type NightscoutRole = typeof NightscoutRole.Type

/** A credential as stored and listed: never the secret or token itself, only the digests it is found by. */
export interface NightscoutCredential {
  readonly id: NightscoutCredentialId
  readonly user_id: UserId
  readonly kind: NightscoutCredentialKind
  readonly role: NightscoutRole
  /** The first characters of the secret or of the token's random part (`credentialHint`), to tell them apart. */
  readonly hint: string
  /** Epoch milliseconds. */
  readonly created_at: number
}

/** A credential as the API lists it. */
export const NightscoutCredentialView = Schema.Struct({
  id: NightscoutCredentialId,
  kind: NightscoutCredentialKind,
  role: NightscoutRole,
  hint: Schema.String.annotate({
    description: "the first 4 characters of the secret, or of the token after its role prefix"
  }),
  created_at: IsoTimestamp
}).annotate({ identifier: "NightscoutCredential" })
export type NightscoutCredentialView = typeof NightscoutCredentialView.Type

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex")

/** Characters a generated secret or token is made of: letters and digits, safe in a URL and a header. */
const ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"

/** `length` characters of {@link ALPHABET}, uniformly (bytes past the largest multiple of its size are skipped). */
const randomText = (length: number): string => {
  const limit = 256 - (256 % ALPHABET.length)
  let text = ""
  while (text.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < limit && text.length < length) text += ALPHABET[byte % ALPHABET.length]
    }
  }
  return text
}

/**
 * A new API secret: 24 characters (Nightscout asks for at least 12), about 140 bits. Only its digests are
 * stored, so a fast hash keeps it safe: there is nothing to guess.
 */
export const newApiSecret = (): string => randomText(24)

/** A new access token, named by its role as Nightscout's are by their subject: `readable-` and 16 characters. */
export const newAccessToken = (role: NightscoutRole): string => `${role}-${randomText(16)}`

/**
 * The digests a credential is found by, one per form a Nightscout client may present it in. An API secret
 * arrives as the hex SHA-1 of the secret (what Nightscout's uploaders send in `api-secret` and `?secret=`) or as
 * its hex SHA-512; a token as itself or as its hex SHA-1. Each form is stored as its SHA-256, so the table holds
 * nothing a client could send.
 */
export const credentialDigests = (kind: NightscoutCredentialKind, secret: string): ReadonlyArray<string> => {
  const sha1 = sha256(createHash("sha1").update(secret).digest("hex"))
  // Nightscout also takes a token's SHA-1 in `api-secret` (xDrip+ set up as `https://<token>@host` sends that).
  if (kind === "token") return [sha256(secret), sha1]
  return [sha1, sha256(createHash("sha512").update(secret).digest("hex"))]
}

/** The first characters of a secret's random part, so its owner can tell listed credentials apart. */
export const credentialHint = (secret: string): string => secret.slice(secret.lastIndexOf("-") + 1).slice(0, 4)

/**
 * The digest to look a presented credential up by: the SHA-256 of what the client sent, hex hashes lowercased
 * (Nightscout's clients send them either way).
 */
export const presentedDigest = (presented: string): string =>
  sha256(/^[0-9a-fA-F]{40}$|^[0-9a-fA-F]{128}$/.test(presented) ? presented.toLowerCase() : presented)

/**
 * An uploader's latest device status for one of its sensors, as Nightscout's `devicestatus` carries it: the
 * uploader's battery and fields (xDrip+'s and Loop's `uploader`, the older `uploaderBattery`).
 */
export interface NightscoutDeviceStatus {
  readonly user_id: UserId
  readonly sensor_id: string
  /** The uploader's `device`, as posted. */
  readonly device: string
  /** Epoch milliseconds: the status's `created_at`, or when it was received. */
  readonly created_at: number
  /** Percent, when the status says. */
  readonly uploader_battery: number | null
  /** The status's `uploader` object as posted (battery, name, type), JSON text of at most 4 KiB; null without one. */
  readonly uploader: string | null
}
