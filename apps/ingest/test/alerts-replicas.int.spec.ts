import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type PostgresHandle, startPostgres } from '@outpost/test-kit/postgres';
import { useServices } from '@outpost/test-kit/vitest';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlertEngine } from '../src/alerts/alert-engine.js';
import type { AlertStore } from '../src/alerts/alert-store.js';
import { DeliveryWorker } from '../src/alerts/delivery-worker.js';
import { LogNotifier } from '../src/alerts/notifiers/log-notifier.js';
import { StreamNotifier } from '../src/alerts/notifiers/stream-notifier.js';
import { WebhookNotifier } from '../src/alerts/notifiers/webhook-notifier.js';
import { PostgresAlertStore } from '../src/alerts/postgres-alert-store.js';
import { SqliteAlertStore } from '../src/alerts/sqlite-alert-store.js';
import { loadConfig } from '../src/config.js';
import { systemRandom } from '../src/core.module.js';
import { PostgresRegistryStore } from '../src/registry/postgres-registry-store.js';
import type { RegistryStore } from '../src/registry/registry-store.js';
import { SqliteRegistryStore } from '../src/registry/sqlite-registry-store.js';
import { LiveEvents } from '../src/stream/live-events.js';
import { waitUntil } from './support/ingest-app.js';
import { webhookReceiver } from './support/webhook-receiver.js';

// Real: two alert engines with their own caches, queues, delivery workers and store
// connections — two replicas — on one database (a SQLite file, then a PostgreSQL server),
// a node:http webhook receiver on 127.0.0.1. Not wired: MQTT; readings are emitted on each
// replica's LiveEvents as its broker would after accepting a batch.

const services = useServices();
let postgres: PostgresHandle;

beforeAll(async () => {
  postgres = await services.add(startPostgres());
});

interface Replica {
  engine: AlertEngine;
  live: LiveEvents;
  store: AlertStore;
}

function scenario(
  name: string,
  open: () => Promise<{ registry: RegistryStore; store: () => Promise<AlertStore> }>,
) {
  describe(`two replicas on ${name}`, () => {
    it('notify each transition exactly once when both see the same readings at once', async () => {
      const T0 = Date.now();
      let now = T0;
      const clock = { now: () => now };
      const config = loadConfig({
        INGEST_ALERT_TICK_MS: '50',
        INGEST_ALERT_STATE_CACHE_MS: '1000',
      });
      const hook = await webhookReceiver();
      const { registry, store: makeStore } = await open();
      const replicas: Replica[] = [];
      for (let i = 0; i < 2; i++) {
        const store = await makeStore();
        const live = new LiveEvents();
        const logger = pino({ level: 'silent' });
        const metrics = new Registry();
        const worker = new DeliveryWorker(
          store,
          config,
          clock,
          systemRandom,
          logger,
          metrics,
          new WebhookNotifier(config, clock),
        );
        const engine = new AlertEngine(
          store,
          registry,
          config,
          clock,
          systemRandom,
          logger,
          metrics,
          live,
          new StreamNotifier(live),
          new LogNotifier(logger),
          worker,
        );
        await engine.onApplicationBootstrap();
        replicas.push({ engine, live, store });
      }
      try {
        await replicas[0]!.store.insertRule(
          {
            id: 'r-replicas',
            name: 'pressure high',
            enabled: true,
            spec: {
              kind: 'threshold',
              metric: 'pressure',
              above: 10,
              clearBelow: 8,
              forMs: 0,
              clearForMs: 0,
              scope: {},
              severity: 'critical',
              channels: [{ type: 'webhook', url: hook.url }],
              backfill: 'record',
              flap: null,
            },
            createdBy: 'test',
            createdAt: T0,
            updatedAt: T0,
            deletedAt: null,
          },
          'whsec_replicas',
        );
        await Promise.all(replicas.map((r) => r.engine.rulesChanged()));

        const devices = ['p-1', 'p-2', 'p-3'];
        const rounds = 6;
        for (let round = 0; round < rounds; round++) {
          for (const value of [15, 2]) {
            now += 1000;
            const points = devices.map((device) => ({
              device,
              metric: 'pressure',
              timeMs: now,
              value,
              tags: {},
            }));
            // Both replicas hear of the same readings at the same moment (a device that
            // reconnected to the other replica, a gateway and its child on two replicas).
            for (const r of replicas) r.live.emit('readings', { publisher: 'gw', points });
            await Promise.all(replicas.map((r) => r.engine.drained()));
          }
        }
        await waitUntil(() => hook.hits.length >= devices.length * rounds * 2, 'notifications');
        // Every webhook is sent once the queue is empty on both.
        await new Promise((r) => setTimeout(r, 300));
        expect(hook.hits).toHaveLength(devices.length * rounds * 2);
        for (const device of devices) {
          const mine = hook.hits.filter((m) => m.alert.device === device);
          expect(mine.map((m) => m.type)).toEqual(
            Array.from({ length: rounds }, () => ['alert.firing', 'alert.resolved']).flat(),
          );
          expect(new Set(mine.map((m) => `${m.alert.id} ${m.type}`)).size).toBe(rounds * 2);
        }
        const stored = await replicas[1]!.store.listAlerts({ limit: 100, ruleId: 'r-replicas' });
        expect(stored.items).toHaveLength(devices.length * rounds);
        expect(stored.items.every((a) => a.status === 'resolved')).toBe(true);
      } finally {
        for (const r of replicas) await r.engine.onApplicationShutdown();
        await registry.close();
        await hook.close();
      }
    });
  });
}

const dir = mkdtempSync(join(tmpdir(), 'outpost-replicas-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

scenario('one SQLite file', async () => {
  const registry = new SqliteRegistryStore(join(dir, 'registry.db'));
  await registry.migrate();
  return {
    registry,
    store: async () => {
      const store = new SqliteAlertStore(join(dir, 'alerts.db'));
      await store.migrate();
      return store;
    },
  };
});

scenario('one PostgreSQL database', async () => {
  const url = await postgres.createDatabase('replicas');
  const registry = new PostgresRegistryStore(url);
  await registry.migrate();
  return {
    registry,
    store: async () => {
      const store = new PostgresAlertStore(url);
      await store.migrate();
      return store;
    },
  };
});
