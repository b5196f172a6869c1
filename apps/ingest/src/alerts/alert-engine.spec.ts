import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../config.js';
import type { RegistryStore } from '../registry/registry-store.js';
import { LiveEvents } from '../stream/live-events.js';
import type { TelemetryPoint } from '../telemetry/telemetry-store.js';
import { AlertEngine } from './alert-engine.js';
import type { AlertStore } from './alert-store.js';
import { DeliveryWorker } from './delivery-worker.js';
import type { AlertMessage } from './notification.js';
import { LogNotifier } from './notifiers/log-notifier.js';
import { StreamNotifier } from './notifiers/stream-notifier.js';
import { WebhookNotifier } from './notifiers/webhook-notifier.js';
import type { RuleRecord } from './rule.js';
import { SqliteAlertStore } from './sqlite-alert-store.js';

// Real: the engine, an in-memory SQLite alert store (every call to it recorded), LiveEvents.
// Strict fake: the registry, which no threshold rule may touch (any call fails the test).

const T0 = 1_700_000_000_000;

const rule: RuleRecord = {
  id: 'r1',
  name: 'hot',
  enabled: true,
  spec: {
    kind: 'threshold',
    metric: 'temperature',
    above: 90,
    forMs: 0,
    clearForMs: 0,
    scope: { tags: { site: 'a' } },
    severity: 'warning',
    channels: [],
    backfill: 'record',
    flap: null,
  },
  createdBy: 't',
  createdAt: T0,
  updatedAt: T0,
  deletedAt: null,
};

const strictRegistry = new Proxy({} as RegistryStore, {
  get: (_t, name) => () => {
    throw new Error(`unexpected registry call: ${String(name)}`);
  },
});

async function setup(env: Record<string, string> = {}) {
  const config = loadConfig({ INGEST_ALERT_TICK_MS: '60000', ...env });
  const real = new SqliteAlertStore(':memory:');
  await real.migrate();
  await real.insertRule(rule, 'whsec_x');
  const calls: string[] = [];
  const store = new Proxy(real, {
    get(target, name, receiver) {
      const value = Reflect.get(target, name, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls.push(String(name));
        return value.apply(target, args);
      };
    },
  }) as AlertStore;
  const clock = { now: () => T0 };
  const random = { uuid: () => crypto.randomUUID(), token: () => 'x', unit: () => 0.5 };
  const logger = pino({ level: 'silent' });
  const metrics = new Registry();
  const live = new LiveEvents();
  const worker = new DeliveryWorker(
    store,
    config,
    clock,
    random,
    logger,
    metrics,
    new WebhookNotifier(config, clock),
  );
  const engine = new AlertEngine(
    store,
    strictRegistry,
    config,
    clock,
    random,
    logger,
    metrics,
    live,
    new StreamNotifier(live),
    new LogNotifier(logger),
    worker,
  );
  await engine.onApplicationBootstrap();
  const alerts: AlertMessage[] = [];
  live.on('alerts', (m) => alerts.push(m));
  return { engine, live, calls, alerts, metrics };
}

const point = (device: string, value: number, i = 0, tags = { site: 'a' }): TelemetryPoint => ({
  device,
  metric: 'temperature',
  timeMs: T0 - 1000 + i,
  value,
  tags,
});

describe('AlertEngine', () => {
  let stop: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await stop?.();
    stop = undefined;
  });

  it('does no I/O in the readings listener: evaluation and storage happen afterwards', async () => {
    const { engine, live, calls, alerts } = await setup();
    stop = () => engine.onApplicationShutdown();
    calls.length = 0;
    live.emit('readings', {
      publisher: 'gw',
      points: [
        point('d1', 95),
        point('d2', 50),
        point('d3', 99, 0, { site: 'b' }),
        { ...point('d1', 1), metric: 'humidity' },
      ],
    });
    expect(calls).toEqual([]);
    await engine.drained();
    expect(calls).toContain('commitMany');
    expect(alerts.map((m) => [m.type, m.alert.device])).toEqual([['alert.firing', 'd1']]);
  });

  it('bounds its queue: past the limit the oldest readings of a rule and device are skipped, and counted', async () => {
    const { engine, live, alerts, metrics } = await setup({ INGEST_ALERT_QUEUE_MAX: '5' });
    stop = () => engine.onApplicationShutdown();
    // Twenty readings in one batch: only the newest five are evaluated; the first, over the
    // limit, is among the skipped, so nothing fires.
    live.emit('readings', {
      publisher: 'gw',
      points: Array.from({ length: 20 }, (_, i) => point('d1', i === 0 ? 95 : 50, i)),
    });
    await engine.drained();
    expect(alerts).toEqual([]);
    const dropped = await metrics.getSingleMetricAsString(
      'outpost_ingest_alert_inputs_dropped_total',
    );
    expect(dropped).toMatch(/outpost_ingest_alert_inputs_dropped_total 15$/m);
  });
});
