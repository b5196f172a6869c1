import { existsSync, mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Lease, Leases } from '../cluster/lease.js';
import { LocalLeases } from '../cluster/local-lease.js';
import { loadConfig } from '../config.js';
import { DurableOutbox } from './durable-outbox.js';
import { outboxPath, TelemetryPipeline } from './telemetry-pipeline.js';

// Real: TelemetryPipeline with its durable outbox and SQLite telemetry store in a temp dir.
// Fake: the outbox lease, whose holding the test switches.

class SwitchedLease implements Lease {
  readonly name = 'outbox:r1';
  held = true;
  private readonly listeners = new Set<(held: boolean) => void>();
  isHeld = () => this.held;
  token = () => (this.held ? 1 : null);
  tryAcquire = async () => this.held;
  start() {}
  acquired = async () => {};
  onChange(listener: (held: boolean) => void) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  async stop() {}
  set(held: boolean) {
    this.held = held;
    for (const l of this.listeners) l(held);
  }
}

const batch = (i: number) => ({
  publisher: 'dev-1',
  points: [{ device: 'dev-1', metric: 'load', timeMs: 1_700_000_000_000 + i, value: i, tags: {} }],
});

describe('TelemetryPipeline ownership of its outbox', () => {
  let dir: string;
  let pipeline: TelemetryPipeline | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'outpost-pipeline-'));
  });
  afterEach(async () => {
    await pipeline?.onApplicationShutdown();
    pipeline = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  function open(shared: boolean, lease: Lease) {
    const config = loadConfig({ INGEST_DATA_DIR: dir, INGEST_REPLICA_ID: 'r1' });
    const leases: Leases = shared
      ? { holder: 'r1/run', shared: true, lease: () => lease, close: async () => {} }
      : new LocalLeases();
    const random = { uuid: () => 'u', token: () => 't', unit: () => 0.5 };
    const metrics = new Registry();
    pipeline = new TelemetryPipeline(
      config,
      { now: () => Date.now() },
      random,
      pino({ level: 'silent' }),
      metrics,
      leases,
      lease,
    );
    pipeline.onModuleInit();
    return { pipeline, config, metrics };
  }

  it('alone: keeps the outbox at <data dir>/telemetry-outbox.db', async () => {
    const { pipeline } = open(false, new SwitchedLease());
    expect(await pipeline.outbox.accept(batch(1))).toBe('accepted');
    expect(pipeline.adoption).toBeUndefined();
    expect(outboxPath(loadConfig({ INGEST_DATA_DIR: dir }), false)).toBe(
      join(dir, 'telemetry-outbox.db'),
    );
  });

  it('refuses batches while the lease is lost and accepts again once it is back', async () => {
    const lease = new SwitchedLease();
    const { pipeline, config } = open(true, lease);
    expect(await pipeline.outbox.accept(batch(1))).toBe('accepted');
    lease.set(false);
    await expect(pipeline.outbox.accept(batch(2))).rejects.toMatchObject({
      kind: 'unavailable',
      code: 'outbox_suspended',
    });
    lease.set(true);
    expect(await pipeline.outbox.accept(batch(3))).toBe('accepted');
    expect(config.outbox.dir).toBe(join(dir, 'outbox'));
  });

  it('stays suspended when its file was adopted (replaced) while the lease was lost', async () => {
    const lease = new SwitchedLease();
    const { pipeline, config } = open(true, lease);
    lease.set(false);
    const file = join(config.outbox.dir, 'r1.db');
    unlinkSync(file);
    lease.set(true);
    await expect(pipeline.outbox.accept(batch(1))).rejects.toMatchObject({
      code: 'outbox_suspended',
    });
  });

  it('joining a cluster: the single-process outbox is handed to adoption and drained once', async () => {
    const single = new DurableOutbox({ path: join(dir, 'telemetry-outbox.db') });
    for (let i = 0; i < 3; i++) await single.accept(batch(i));
    await single.close();
    const { pipeline, config, metrics } = open(true, new SwitchedLease());
    expect(existsSync(join(dir, 'telemetry-outbox.db'))).toBe(false);
    expect(existsSync(join(config.outbox.dir, 'r1.single.db'))).toBe(true);
    expect(await pipeline.adoption!.scan()).toEqual(['r1.single']);
    expect(existsSync(join(config.outbox.dir, 'r1.single.db'))).toBe(false);
    const adopted = await metrics
      .getSingleMetric('outpost_ingest_outbox_adopted_points_total')!
      .get();
    expect(adopted.values[0]!.value).toBe(3);
  });
});
