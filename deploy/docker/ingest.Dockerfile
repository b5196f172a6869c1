# syntax=docker/dockerfile:1.7
#
# The Outpost ingest service (HTTP API + dashboard + embedded MQTT broker).
# Build from the repository root:
#   docker build -f deploy/docker/ingest.Dockerfile -t outpost/ingest .
# BuildKit reads ingest.Dockerfile.dockerignore next to this file.

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- base: Node 20 with the npm and turbo versions the repository pins --------------------
FROM ${NODE_IMAGE} AS base
ENV NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false \
    NPM_CONFIG_AUDIT=false
RUN npm install -g npm@11.19.1
WORKDIR /app

# ---- prune: only the workspaces the ingest needs (the dashboard is served by it) ----------
FROM base AS prune
RUN npm install -g turbo@2.11.9
COPY . .
RUN turbo prune @outpost/ingest @outpost/dashboard --docker

# ---- toolchain: better-sqlite3 compiles from source --------------------------------------
FROM base AS toolchain
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*

# ---- build: every dependency, then turbo run build ----------------------------------------
FROM toolchain AS build
COPY --from=prune /app/.npmrc ./.npmrc
COPY --from=prune /app/out/json/ ./
COPY --from=prune /app/out/package-lock.json ./package-lock.json
RUN npm ci
COPY --from=prune /app/out/full/ ./
RUN npx turbo run build --filter=@outpost/ingest --filter=@outpost/dashboard

# ---- prod-deps: production dependencies only, on the same pruned lock file ----------------
FROM toolchain AS prod-deps
COPY --from=prune /app/.npmrc ./.npmrc
COPY --from=prune /app/out/json/ ./
COPY --from=prune /app/out/package-lock.json ./package-lock.json
RUN npm ci --omit=dev && npm cache clean --force

# ---- runtime: slim Node 20, non-root, dist + production dependencies ----------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    INGEST_DATA_DIR=/var/lib/outpost \
    INGEST_HOST=0.0.0.0 \
    INGEST_HTTP_PORT=8080 \
    INGEST_MQTT_PORT=1883 \
    INGEST_MQTTS_PORT=8883
WORKDIR /app
RUN groupadd --system --gid 10001 outpost \
 && useradd --system --uid 10001 --gid outpost --home-dir /var/lib/outpost \
      --shell /usr/sbin/nologin outpost \
 && mkdir -p /var/lib/outpost \
 && chown outpost:outpost /var/lib/outpost \
 && chmod 0700 /var/lib/outpost
# package.json files and node_modules (workspace links included), owned by root: read-only.
COPY --from=prod-deps /app/ ./
COPY --from=build /app/packages/protocol/dist ./packages/protocol/dist
COPY --from=build /app/packages/signing/dist ./packages/signing/dist
COPY --from=build /app/apps/ingest/dist ./apps/ingest/dist
COPY --from=build /app/apps/dashboard/dist ./apps/dashboard/dist
RUN rm -f .npmrc package-lock.json
USER 10001:10001
VOLUME ["/var/lib/outpost"]
# HTTP API, SSE, dashboard, MQTT over WebSocket / MQTT TCP / MQTT TLS
EXPOSE 8080 1883 8883
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.INGEST_HTTP_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
STOPSIGNAL SIGTERM
# Node flags: `outpost.nodeFlags` in apps/ingest/package.json (a larger young generation:
# fewer scavenges under load; see the README's benchmarks).
CMD ["node", "--max-semi-space-size=64", "apps/ingest/dist/main.js"]
