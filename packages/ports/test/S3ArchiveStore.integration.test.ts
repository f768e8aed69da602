import { ConfigProvider, Layer } from "effect"
import { S3ArchiveStore } from "../src/index.ts"
import { requiredServer } from "../src/testing/index.ts"
import { archiveStoreContract } from "./contracts/ArchiveStoreContract.ts"

const endpoint = requiredServer("S3_ENDPOINT")

archiveStoreContract(
  `S3 at ${endpoint}`,
  S3ArchiveStore.layer.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv())))
)
