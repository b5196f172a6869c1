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

@Injectable()
class RegistryLifecycle implements OnApplicationShutdown {
  constructor(@Inject(REGISTRY_STORE) private readonly store: RegistryStore) {}

  async onApplicationShutdown(): Promise<void> {
    await this.store.close();
  }
}

/** Config, clock, randomness, logger, metrics and the registry: one instance per app. */
@Global()
@Module({})
export class CoreModule {
  static forRoot(deps: CoreDeps): DynamicModule {
    const providers = [
      { provide: CONFIG, useValue: deps.config },
      { provide: LOGGER, useValue: deps.logger },
      { provide: CLOCK, useValue: deps.clock ?? systemClock },
      { provide: RANDOM, useValue: deps.random ?? systemRandom },
      { provide: METRICS, useFactory: createMetricsRegistry },
      { provide: REGISTRY_STORE, useFactory: () => openRegistry(deps.config) },
      RegistryLifecycle,
      RegistryEvents,
      ServiceKeys,
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
        RegistryEvents,
        ServiceKeys,
      ],
    };
  }
}
