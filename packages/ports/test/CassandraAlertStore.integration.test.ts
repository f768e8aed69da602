import { ConfigProvider, Layer } from "effect"
import { CassandraAlertStore } from "../src/index.ts"
import { requiredServer } from "../src/testing/index.ts"
import { alertStoreContract } from "./contracts/AlertStoreContract.ts"

const contactPoints = requiredServer("CASSANDRA_CONTACT_POINTS")

// A keyspace of this run's own, on the real Cassandra the test runner started.
alertStoreContract(
  `Cassandra at ${contactPoints}`,
  CassandraAlertStore.layer.pipe(
    Layer.provide(
      ConfigProvider.layer(
        ConfigProvider.fromEnvRecord({
          ...process.env,
          CASSANDRA_KEYSPACE: `dexmon_test_${Date.now().toString(36)}`
        })
      )
    )
  )
)
