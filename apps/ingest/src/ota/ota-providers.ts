import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  Inject,
  Injectable,
  type OnApplicationShutdown,
  type Provider,
  type Type,
} from '@nestjs/common';
import type { IngestConfig } from '../config.js';
import { CONFIG } from '../injection.js';
import { FirmwareController } from './firmware.controller.js';
import { FirmwareService } from './firmware.service.js';
import { OTA_STORE, type OtaStore } from './ota-store.js';
import { ReleaseKeysController } from './release-keys.controller.js';
import { ReleaseKeysService } from './release-keys.service.js';
import { RolloutProgress } from './rollout-progress.js';
import { RolloutRunner } from './rollout-runner.js';
import { RolloutsController } from './rollouts.controller.js';
import { RolloutsService } from './rollouts.service.js';
import { SqliteOtaStore } from './sqlite-ota-store.js';

/**
 * The OTA store: PostgreSQL when the registry is there (tables `ota_*` beside it, shared by
 * every replica), else its own SQLite file `<data dir>/ota.db`, apart from the registry so
 * rollout writes never queue behind registry writes and the two schemas evolve alone.
 */
async function openOtaStore(config: IngestConfig): Promise<OtaStore> {
  let store: OtaStore;
  if (config.databaseUrl) {
    const { PostgresOtaStore } = await import('./postgres-ota-store.js');
    store = new PostgresOtaStore(config.databaseUrl);
  } else {
    mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    store = new SqliteOtaStore(join(config.dataDir, 'ota.db'));
  }
  await store.migrate();
  return store;
}

/** Closes the store after everything that uses it has stopped. */
@Injectable()
class OtaStoreLifecycle implements OnApplicationShutdown {
  constructor(@Inject(OTA_STORE) private readonly store: OtaStore) {}

  async onApplicationShutdown(): Promise<void> {
    await this.store.close();
  }
}

export const OTA_CONTROLLERS: Type[] = [
  ReleaseKeysController,
  FirmwareController,
  RolloutsController,
];

export const OTA_PROVIDERS: Provider[] = [
  { provide: OTA_STORE, useFactory: openOtaStore, inject: [CONFIG] },
  OtaStoreLifecycle,
  ReleaseKeysService,
  FirmwareService,
  RolloutProgress,
  RolloutRunner,
  RolloutsService,
];
