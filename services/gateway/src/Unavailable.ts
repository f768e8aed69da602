import { ServiceUnavailable } from "@dexmon/api"
import { Effect } from "effect"

/**
 * A store or the event log failing is the server's problem: logged with its
 * cause, and answered 503 so the client retries; nothing was accepted or
 * changed. `what` names it in both (`"the alert store"`).
 */
export const unavailable = (what: string) => (error: { readonly _tag: string }) =>
  Effect.logError(`${what} failed`, error).pipe(
    Effect.andThen(Effect.fail(new ServiceUnavailable({ message: `${what} is unavailable; retry later` })))
  )

/** The stores the read path over hot and archived readings (`ReadingsQuery`) needs, each answered 503 by name. */
export const readPathUnavailable = {
  ReadingStoreError: unavailable("the readings store"),
  ArchiveLedgerError: unavailable("the archive ledger"),
  ArchiveStoreError: unavailable("the archive store"),
  ArchiveFormatError: unavailable("the archive")
}
