/**
 * The test fixtures of every suite, in one place: fresh databases, temp folders and free ports,
 * DexMon's services as OS processes, the counterparts and fault injectors the end-to-end suites
 * run them against, independent readers of what they produced, and `eventually`, through which
 * every poll goes so that none runs out silently.
 */

export { freePort } from "@dexmon/ports"
// The stores' own fixtures stay beside the stores; suites import them from here.
export {
  layerEmbeddedPostgresTest,
  layerServerPostgresTest,
  type ReadingHistoryOptions,
  readingHistory,
  requiredServer,
  seedReadingHistory
} from "@dexmon/ports/testing"
// A headless browser, to look at what the API serves as a person would (screenshots as test artifacts).
export * from "./browsers/Chromium.ts"
// TLS of a test's own: a certificate authority it makes, a PostgreSQL server that speaks only TLS, a TLS front.
export * from "./Certificates.ts"
// Clocks that are off or stopped, for runs that must see a given time.
export * from "./Clocks.ts"
// Counterparts the services talk to: an OAuth issuer, a webhook endpoint, Alertmanager's webhook; the CGM clouds that Nightscout
// uploaders read from (Dexcom Share, LibreLinkUp).
export * from "./counterparts/AlertmanagerWebhook.ts"
export * from "./counterparts/DexcomShare.ts"
export * from "./counterparts/Issuer.ts"
export * from "./counterparts/LibreLinkUp.ts"
export * from "./counterparts/WebhookReceiver.ts"
// Waiting on a real signal.
export * from "./Eventually.ts"
// Resources of one suite, released with its scope.
export * from "./FreshDatabase.ts"
// Faults on demand: a PostgreSQL server to crash, a TCP path to partition.
export * from "./faults/CrashablePostgres.ts"
export * from "./faults/TcpProxy.ts"
export * from "./faults/TlsFront.ts"
export * from "./faults/TlsPostgres.ts"
// An OpenAPI-driven fuzzer: hostile requests built from the served document, answers checked against it.
export * from "./fuzz/OpenApiFuzzer.ts"
// DexMon's services as OS processes, and what they use of the machine.
export * from "./processes/DexMonProcess.ts"
export * from "./processes/ProcessMemory.ts"
export * from "./processes/ServiceProcess.ts"
// Plain reference computations (percentiles, local time of day) to check DexMon's figures against.
export * from "./References.ts"
// Independent readers of what the services produced: Kafka through kcat, Prometheus text, Prometheus itself.
export * from "./readers/Exposition.ts"
export * from "./readers/Kcat.ts"
// What an in-process service recorded: its finished spans, its log lines.
export * from "./readers/Logs.ts"
export * from "./readers/Prometheus.ts"
export * from "./readers/Spans.ts"
export * from "./readers/Zipkin.ts"
export * from "./TempDir.ts"
