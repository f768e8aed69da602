import { Layer } from "effect"
import { PostgresEventLog, Topics } from "../src/index.ts"
import { layerEmbeddedPostgresTest } from "../src/testing/index.ts"
import { contractTopics, eventLogContract } from "./contracts/EventLogContract.ts"

eventLogContract(
  "embedded (PostgreSQL)",
  PostgresEventLog.layer.pipe(Layer.provide(Topics.exactly(contractTopics)), Layer.provide(layerEmbeddedPostgresTest))
)
