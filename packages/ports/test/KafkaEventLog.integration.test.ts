import { ConfigProvider, Layer } from "effect"
import { KafkaEventLog, Topics } from "../src/index.ts"
import { requiredServer } from "../src/testing/index.ts"
import { contractTopics, eventLogContract } from "./contracts/EventLogContract.ts"

const brokers = requiredServer("KAFKA_BROKERS")

eventLogContract(
  `Kafka at ${brokers}`,
  KafkaEventLog.layer.pipe(
    Layer.provide(Topics.only(contractTopics)),
    Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv()))
  )
)
