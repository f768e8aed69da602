import { Layer } from "effect"
import { ReadingStore } from "./ReadingStore.ts"
import { makeWith } from "./SqlReadingStore.ts"

/**
 * The readings store on TimescaleDB: `glucose_readings` is a hypertable in chunks of
 * `DEXMON_CHUNK_INTERVAL`, compressed after `DEXMON_COMPRESS_AFTER` (segments per sensor), and the
 * archiver drops the chunks it has emptied. Start-up fails if the database has no timescaledb extension.
 */
export const layer = Layer.effect(ReadingStore, makeWith("timescale"))
