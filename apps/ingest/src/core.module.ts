import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  type DynamicModule,
  Global,
  Inject,
  Injectable,
  Module,
  type OnApplicationShutdown,
} from '@nestjs/common';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { CLUSTER_BUS, type ClusterBus } from './cluster/cluster-bus.js';
import { InProcessClusterBus } from './cluster/in-process-cluster-bus.js';
import { LEASES } from './cluster/lease.js';
import { LEASE_PROVIDERS, OUTBOX_LEASE } from './cluster/lease-providers.js';
import { RegistryRelay } from './cluster/registry-relay.js';
import type { IngestConfig } from './config.js';
import { createMetricsRegistry } from './health/metrics.js';
import {
  CLOCK,
  type Clock,
  CONFIG,
  LOGGER,
  METRICS,
  RANDOM,
  type Random,
  REGISTRY_STORE,
} from './injection.js';
import { ServiceKeys } from './keys/service-keys.js';
import { RegistryEvents } from './registry/registry-events.js';
import type { RegistryStore } from './registry/registry-store.js';
import { SqliteRegistryStore } from './registry/sqlite-registry-store.js';

export interface CoreDeps {
  config: IngestConfig;
  logger: Logger;
  clock?: Clock;
  random?: Random;
}

export const systemClock: Clock = { now: () => Date.now() };
export const systemRandom: Random = {
  uuid: () => randomUUID(),
  token: (n) => randomBytes(n).toString('base64url'),
  unit: () => Math.random(),
};

async function openRegistry(config: IngestConfig): Promise<RegistryStore> {
  let store: RegistryStore;
  if (config.databaseUrl) {
    const { PostgresRegistryStore } = await import('./registry/postgres-registry-store.js');
    store = new PostgresRegistryStore(config.databaseUrl);
  } else {
    mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    store = new SqliteRegistryStore(join(config.dataDir, 'registry.db'));
  }
  await store.migrate();
  return store;
}

/** Cluster mode (INGEST_REDIS_URL): the bus over Redis; else the single-node one. */
async function openClusterBus(
  config: IngestConfig,
  clock: Clock,
  logger: Logger,
  metrics: Registry,
): Promise<ClusterBus> {
  if (!config.redisUrl) return new InProcessClusterBus(config.replicaId);
  const { RedisClusterBus } = await import('./cluster/redis-cluster-bus.js');
  const bus = new RedisClusterBus(config.redisUrl, config.replicaId, clock, logger, metrics);
  await bus.start();
  return bus;
}

@Injectable()
class ClusterLifecycle implements OnApplicationShutdown {
  constructor(@Inject(CLUSTER_BUS) private readonly bus: ClusterBus) {}

  async onApplicationShutdown(): Promise<void> {
    await this.bus.close();
  }
}

@Injectable()
class RegistryLifecycle implements OnApplicationShutdown {
  constructor(@Inject(REGISTRY_STORE) private readonly store: RegistryStore) {}

  async onApplicationShutdown(): Promise<void> {
    await this.store.close();
  }
}

/**
 * Config, clock, randomness, logger, metrics, the registry and the cluster bus: one instance
 * per app.
 */
@Global()
@Module({})
export class CoreModule {
  static forRoot(deps: CoreDeps): DynamicModule {
    const clock = deps.clock ?? systemClock;
    const providers = [
      { provide: CONFIG, useValue: deps.config },
      { provide: LOGGER, useValue: deps.logger },
      { provide: CLOCK, useValue: clock },
      { provide: RANDOM, useValue: deps.random ?? systemRandom },
      { provide: METRICS, useFactory: () => createMetricsRegistry(deps.config.replicaId) },
      { provide: REGISTRY_STORE, useFactory: () => openRegistry(deps.config) },
      {
        provide: CLUSTER_BUS,
        useFactory: (metrics: Registry) => openClusterBus(deps.config, clock, deps.logger, metrics),
        inject: [METRICS],
      },
      RegistryLifecycle,
      ClusterLifecycle,
      RegistryEvents,
      RegistryRelay,
      ServiceKeys,
      ...LEASE_PROVIDERS,
    ];
    return {
      module: CoreModule,
      providers,
      exports: [
        CONFIG,
        LOGGER,
        CLOCK,
        RANDOM,
        METRICS,
        REGISTRY_STORE,
        CLUSTER_BUS,
        RegistryEvents,
        ServiceKeys,
        LEASES,
        OUTBOX_LEASE,
      ],
    };
  }
}
