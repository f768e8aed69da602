/**
 * The V8 options every DexMon service runs with when deployed (`NODE_OPTIONS` in `k8s/configmap.yaml` and in
 * `docker-compose.yml`, checked by `deploy/test`), and that the benchmarks give the services unless told
 * otherwise (`BENCH_NODE_OPTIONS`).
 *
 * Why: a service's live heap under load is 50-100 MB, but with V8's defaults on a large machine (a heap limit of
 * several GB, 16-64 MB semi-spaces) it lets garbage pile up to 450-650 MB resident before collecting. A 256 MB
 * old generation and 2 MB semi-spaces keep every service near 200 MB under load (`pnpm bench:memory`: receiver
 * 532 -> 233 MB, processor 468 -> 192, notifier 544 -> 236 in `bench:e2e`) with the heap still 2.5 times the
 * largest live set measured (the notifier's 96 MB). A service that outgrew it would stop with a heap-limit
 * error and be restarted (Kubernetes, compose), never run on silently degraded.
 *
 * `pnpm start` (every service in one process) keeps V8's defaults: its one heap holds them all; so does the
 * archiver, whose two archive groups in flight hold up to 400 MB of rows.
 */
export const SERVICE_NODE_OPTIONS = "--max-semi-space-size=2 --max-old-space-size=256"
