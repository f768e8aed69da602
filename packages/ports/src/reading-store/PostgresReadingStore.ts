import { Layer } from "effect"
import { ReadingStore } from "./ReadingStore.ts"
import { makeWith } from "./SqlReadingStore.ts"

/**
 * The readings store on plain PostgreSQL: `glucose_readings` is partitioned by month, the partitions
 * made ahead and on demand, and the archiver drops the months it has emptied.
 */
export const layer = Layer.effect(ReadingStore, makeWith("postgres"))
