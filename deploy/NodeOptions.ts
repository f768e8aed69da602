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
 * The archiver keeps V8's defaults: its two archive groups in flight hold up to 400 MB of rows.
 */
export const SERVICE_NODE_OPTIONS = "--max-semi-space-size=16 --max-old-space-size=256"

/**
 * The V8 options of `pnpm start` (every service in one process, for one person or a demo; also the image's
 * default command). Its start-up (migrations, the embedded server's first statements) grew V8's semi-spaces to
 * 32 MB each, which then stayed committed: 67 MB of new space holding 4 MB of live objects, and an idle RSS of
 * 205 MB. With 2 MB semi-spaces it idles at 149 MB (2026-12-02, 15 s after start; 8 MB: 163, 4 MB: 156). One
 * reading every five minutes per sensor needs no throughput that more scavenges would cost. The old generation
 * keeps V8's limit: one heap holds every service.
 */
export const STANDALONE_NODE_OPTIONS = "--max-semi-space-size=2"

/**
 * glibc malloc settings for the same services (in `k8s/configmap.yaml` and `docker-compose.yml` beside
 * `NODE_OPTIONS`, checked by `deploy/test`; the benchmarks give them too unless `BENCH_MALLOC=default`). Outside
 * V8's heap a service's native memory (the driver sockets' buffers, zlib, TLS) came to 90 MB of the notifier's
 * 285 MB peak, half of it freed chunks glibc kept: two arenas instead of eight per core, and returning freed
 * memory above 1 MB to the system, took the main arena from 46 to 27 MB and the peak to 274 MB (2026-12-01,
 * `bench:memory`, from a heap snapshot and `/proc/<pid>/smaps` of the notifier under load).
 */
export const SERVICE_MALLOC_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: "2",
  MALLOC_TRIM_THRESHOLD_: "1048576",
  MALLOC_MMAP_THRESHOLD_: "262144"
}

/** The malloc settings a benchmark gives a service: as deployed, or glibc's defaults with `BENCH_MALLOC=default`. */
export const benchMallocEnv = (): Readonly<Record<string, string>> =>
  process.env.BENCH_MALLOC === "default" ? {} : SERVICE_MALLOC_ENV
