# syntax=docker/dockerfile:1
#
# One image for every DexMon service. The code runs as TypeScript through
# Node 24's type stripping, so there is no build step: the image holds the
# repository and its dependencies, and each compose service or Kubernetes
# workload chooses its entry point with its command, e.g.
#   node services/receiver/src/main.ts
# The default command runs every service in one process (`pnpm start`).
FROM node:24-slim

# pnpm comes from corepack, at the version named by `packageManager` in
# package.json; it is only needed while the image is built.
ENV COREPACK_HOME=/usr/local/share/corepack \
    COREPACK_ENABLE_DOWNLOAD_PROMPT=0
RUN corepack enable pnpm

WORKDIR /app

# `pnpm fetch` needs only the lockfile, so the download step is cached until
# the lockfile changes. The store lives in a BuildKit cache mount, not in a
# layer, so the image carries node_modules once.
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml ./
RUN --mount=type=cache,id=dexmon-pnpm-store,target=/pnpm/store \
    pnpm fetch --store-dir /pnpm/store

COPY . .
RUN --mount=type=cache,id=dexmon-pnpm-store,target=/pnpm/store \
    pnpm install --frozen-lockfile --prod=false --offline --store-dir /pnpm/store

# The code and node_modules stay owned by root: the service user can read them
# but not change them. Only DEXMON_DATA_DIR (used by the embedded stores of the
# default command, never with DEXMON_PROFILE=production) is writable.
RUN groupadd --system --gid 10001 dexmon \
 && useradd --system --uid 10001 --gid dexmon --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin dexmon \
 && mkdir -p /var/lib/dexmon \
 && chown dexmon:dexmon /var/lib/dexmon

ENV HOST=0.0.0.0 \
    PORT=8080 \
    DEXMON_DATA_DIR=/var/lib/dexmon

# Numeric, so Kubernetes can check runAsNonRoot without a runAsUser.
USER 10001:10001
EXPOSE 8080

# Node handles SIGTERM itself (the services shut down gracefully on it), so it
# runs as PID 1 without an init wrapper.
CMD ["node", "--max-semi-space-size=2", "services/standalone/src/main.ts"]
