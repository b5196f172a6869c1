# syntax=docker/dockerfile:1.7
#
# outpost-agent, the edge agent, for gateways that run containers. A gateway without a
# container runtime uses the systemd unit in deploy/edge/ instead.
# Build from the repository root:
#   docker build -f deploy/docker/agent.Dockerfile -t outpost/agent .
# Run it with agent.yaml mounted and the serial devices passed through:
#   docker run -v ./agent.yaml:/etc/outpost-agent/agent.yaml:ro -v outpost-agent:/var/lib/outpost-agent \
#     --device /dev/ttyUSB0 --group-add dialout outpost/agent
# BuildKit reads agent.Dockerfile.dockerignore next to this file.

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS base
ENV NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false \
    NPM_CONFIG_AUDIT=false
RUN npm install -g npm@11.19.1
WORKDIR /app

FROM base AS prune
RUN npm install -g turbo@2.11.9
COPY . .
RUN turbo prune @outpost/edge-agent --docker

# better-sqlite3 compiles from source; serialport ships its binding prebuilt.
FROM base AS toolchain
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*

FROM toolchain AS build
COPY --from=prune /app/.npmrc ./.npmrc
COPY --from=prune /app/out/json/ ./
COPY --from=prune /app/out/package-lock.json ./package-lock.json
RUN npm ci
COPY --from=prune /app/out/full/ ./
RUN npx turbo run build --filter=@outpost/edge-agent

FROM toolchain AS prod-deps
COPY --from=prune /app/.npmrc ./.npmrc
COPY --from=prune /app/out/json/ ./
COPY --from=prune /app/out/package-lock.json ./package-lock.json
RUN npm ci --omit=dev && npm cache clean --force

FROM ${NODE_IMAGE} AS runtime
# The same defaults as the systemd unit (deploy/edge/outpost-agent.service).
ENV NODE_ENV=production \
    MALLOC_ARENA_MAX=2 \
    UV_THREADPOOL_SIZE=2 \
    AGENT_CONFIG=/etc/outpost-agent/agent.yaml \
    AGENT_DATA_DIR=/var/lib/outpost-agent
WORKDIR /app
RUN groupadd --system --gid 10002 outpost-agent \
 && useradd --system --uid 10002 --gid outpost-agent --groups dialout \
      --home-dir /var/lib/outpost-agent --shell /usr/sbin/nologin outpost-agent \
 && mkdir -p /var/lib/outpost-agent /etc/outpost-agent \
 && chown outpost-agent:outpost-agent /var/lib/outpost-agent \
 && chmod 0750 /var/lib/outpost-agent
COPY --from=prod-deps /app/ ./
COPY --from=build /app/packages/protocol/dist ./packages/protocol/dist
COPY --from=build /app/packages/signing/dist ./packages/signing/dist
COPY --from=build /app/packages/serialport/dist ./packages/serialport/dist
COPY --from=build /app/apps/edge-agent/dist ./apps/edge-agent/dist
COPY deploy/edge/agent.yaml /etc/outpost-agent/agent.yaml
RUN rm -f .npmrc package-lock.json
USER 10002:10002
VOLUME ["/var/lib/outpost-agent"]
# The local MQTT broker for site sensors (sources[].mqtt.listen) and the Prometheus endpoint.
EXPOSE 1883 9464
# The metrics server answers /healthz (metrics.listen, 127.0.0.1:9464 by default).
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9464/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
STOPSIGNAL SIGTERM
# Node flags and native memory settings as in deploy/edge/outpost-agent.service (see there).
CMD ["node", "--max-semi-space-size=1", "--max-old-space-size=96", "--no-opt", "apps/edge-agent/dist/main.js", "run"]
