/**
 * The V8 options every long-running DexMon service runs with when deployed (`NODE_OPTIONS` in
 * `k8s/configmap.yaml` and in `docker-compose.yml`, checked by `deploy/test`), and that the benchmarks give the
 * services unless told otherwise (`BENCH_NODE_OPTIONS`).
 *
 * Why: a service's live heap under load is 50-100 MB, but with V8's defaults on a large machine (a heap limit of
 * several GB, semi-spaces growing to 64 MB) it lets garbage pile up to 450-650 MB resident before collecting.
 * A 256 MB old generation with 16 MB semi-spaces halves that, at a cost in CPU: smaller semi-spaces mean more
 * scavenges per request. Measured back to back with `bench:e2e` (single posts and batches of 100) on the 2-core
 * machine, 2026-12-01:
 *
 *   V8 options                                          single posts/s  batch100/s  peak RSS recv/proc/notif MB
 *   (V8's defaults)                                     442             6,160       525 / 479 / 545
 *   --max-semi-space-size=16 --max-old-space-size=256   339             4,373       268 / 221 / 260
 *   --max-semi-space-size=8  --max-old-space-size=256   259             3,868       238 / 206 / 240
 *   --max-semi-space-size=2  --max-old-space-size=256   198-223         3,660-3,872 226 / 195 / 236
 *
 * The old generation stays 2.5 times the largest live set measured (the notifier's 96 MB). A service that
 * outgrew it would stop with a heap-limit error and be restarted (Kubernetes, compose), never run on silently
 * degraded. A deployment that prefers throughput to memory sets `NODE_OPTIONS` to "" and a 1 GiB limit.
 *
 * `pnpm start` (every service in one process) keeps V8's defaults: its one heap holds them all; so does the
 * archiver, whose two archive groups in flight hold up to 400 MB of rows.
 */
export const SERVICE_NODE_OPTIONS = "--max-semi-space-size=16 --max-old-space-size=256"
