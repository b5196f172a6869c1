import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Provider, Type } from '@nestjs/common';
import type { IngestConfig } from '../config.js';
import { CONFIG } from '../injection.js';
import { AlertEngine } from './alert-engine.js';
import { AlertRulesController } from './alert-rules.controller.js';
import { ALERT_STORE, type AlertStore } from './alert-store.js';
import { AlertsController } from './alerts.controller.js';
import { AlertsService } from './alerts.service.js';
import { DeliveryWorker } from './delivery-worker.js';
import { LogNotifier } from './notifiers/log-notifier.js';
import { StreamNotifier } from './notifiers/stream-notifier.js';
import { WebhookNotifier } from './notifiers/webhook-notifier.js';
import { SqliteAlertStore } from './sqlite-alert-store.js';

/**
 * The alert store: PostgreSQL when the registry is there (tables `alert_*` beside it, for
 * every replica), else its own SQLite file `<data dir>/alerts.db`, apart from the registry
 * so alert writes never queue behind registry writes and the two schemas evolve alone.
 */
async function openAlertStore(config: IngestConfig): Promise<AlertStore> {
  let store: AlertStore;
  if (config.databaseUrl) {
    const { PostgresAlertStore } = await import('./postgres-alert-store.js');
    store = new PostgresAlertStore(config.databaseUrl);
  } else {
    mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    store = new SqliteAlertStore(join(config.dataDir, 'alerts.db'));
  }
  await store.migrate();
  return store;
}

export const ALERT_CONTROLLERS: Type[] = [AlertRulesController, AlertsController];

export const ALERT_PROVIDERS: Provider[] = [
  { provide: ALERT_STORE, useFactory: openAlertStore, inject: [CONFIG] },
  WebhookNotifier,
  StreamNotifier,
  LogNotifier,
  DeliveryWorker,
  AlertEngine,
  AlertsService,
];
