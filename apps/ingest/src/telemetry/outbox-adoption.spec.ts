import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryLeaseClaims } from '../cluster/lease.contract.js';
import type { LeaseOptions, Leases } from '../cluster/lease.js';
import { PostgresLease } from '../cluster/postgres-lease.js';
import { DurableOutbox } from './durable-outbox.js';
import { OutboxAdoption } from './outbox-adoption.js';
import { StoreRefused, type TelemetryPoint, type TelemetryStore } from './telemetry-store.js';

// Real: OutboxAdoption, DurableOutbox files in a temp dir, PostgresLease's claim loop.
// Fake: the lease table (an in-memory model of its CLAIM on the wall clock) and the
// telemetry store (records writes; strict: any other call fails the test).

function leasesOf(table: MemoryLeaseClaims, holder: string): Leases {
  return {
    holder,
    shared: true,
    lease: (name: string, options: LeaseOptions = {}) =>
      new PostgresLease({
        ...options,
        table,
        name,
        holder,
        ttlMs: 60_000,
        logger: pino({ level: 'silent' }),
      }),
    close: async () => {},
  };
}

function memoryStore(refuse = false) {
  const written: TelemetryPoint[] = [];
  const store = new Proxy(
    {
      write: async (points: readonly TelemetryPoint[]) => {
        await new Promise((r) => setImmediate(r));
        if (refuse) throw new StoreRefused('bad point');
        written.push(...points);
      },
    },
    {
      get(target, name) {
        if (name === 'then') return undefined;
        if (!(name in target)) throw new Error(`unexpected store call: ${String(name)}`);
        return target[name as keyof typeof target];
      },
    },
  ) as unknown as TelemetryStore;
  return { store, written };
}

const T0 = 1_700_000_000_000;
const clock = { now: () => T0 };

async function fillOutbox(path: string, batches: number, perBatch: number): Promise<void> {
  const outbox = new DurableOutbox({ path, clock, groupCommitMs: 0 });
  for (let b = 0; b < batches; b++) {
    await outbox.accept({
      publisher: 'dev-1',
      boot: 'b1',
      seq: [b * perBatch, b * perBatch + perBatch - 1],
      points: Array.from({ length: perBatch }, (_, i) => ({
        device: 'dev-1',
        metric: 'load',
        timeMs: T0 + b * perBatch + i,
        value: i,
        tags: {},
      })),
    });
  }
  await outbox.close();
}

describe('OutboxAdoption', () => {
  let dir: string;
  let table: MemoryLeaseClaims;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'outpost-adoption-'));
    table = new MemoryLeaseClaims();
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const adoption = (
    replicaId: string,
    store: TelemetryStore,
    adoptAfterMs = 0,
    onReplicaLost?: (replicaId: string) => Promise<void>,
  ) =>
    new OutboxAdoption({
      dir,
      replicaId,
      leases: leasesOf(table, `${replicaId}/run`),
      store,
      adoptAfterMs,
      scanMs: 60_000,
      clock,
      random: () => 0.5,
      logger: pino({ level: 'silent' }),
      ...(onReplicaLost ? { onReplicaLost } : {}),
    });

  it('drains the file of a replica whose lease is free, once, then removes it and releases', async () => {
    await fillOutbox(join(dir, 'dead.db'), 3, 10);
    await fillOutbox(join(dir, 'me.db'), 1, 5);
    const { store, written } = memoryStore();
    expect(await adoption('me', store).scan()).toEqual(['dead']);
    expect(written.map((p) => p.timeMs)).toEqual(Array.from({ length: 30 }, (_, i) => T0 + i));
    expect(readdirSync(dir).sort()).toEqual(['me.db']);
    expect(table.rows.get('outbox:dead')!.expiresAt).toBeLessThanOrEqual(Date.now());
    // Nothing left to adopt: a second pass writes nothing.
    expect(await adoption('me', store).scan()).toEqual([]);
    expect(written).toHaveLength(30);
  });

  it('leaves a file alone while its owner holds the lease, or within the grace period', async () => {
    await fillOutbox(join(dir, 'alive.db'), 2, 10);
    const owner = leasesOf(table, 'alive/run').lease('outbox:alive');
    expect(await owner.tryAcquire()).toBe(true);
    const { store, written } = memoryStore();
    expect(await adoption('me', store).scan()).toEqual([]);

    await owner.stop();
    expect(await adoption('me', store, 60_000).scan()).toEqual([]);
    expect(written).toHaveLength(0);
    expect(existsSync(join(dir, 'alive.db'))).toBe(true);
  });

  it('two survivors scanning at once: one drains the file, the other skips it', async () => {
    await fillOutbox(join(dir, 'dead.db'), 4, 25);
    const { store, written } = memoryStore();
    const results = await Promise.all([adoption('a', store).scan(), adoption('b', store).scan()]);
    expect(results.flat()).toEqual(['dead']);
    expect(written).toHaveLength(100);
    expect(new Set(written.map((p) => p.timeMs)).size).toBe(100);
  });

  it('reports each dead replica lost once, before draining, even when its file is empty', async () => {
    await fillOutbox(join(dir, 'dead.db'), 2, 5);
    await fillOutbox(join(dir, 'idle.db'), 0, 0);
    await fillOutbox(join(dir, 'alive.db'), 1, 5);
    await fillOutbox(join(dir, 'me.single.db'), 1, 5);
    const owner = leasesOf(table, 'alive/run').lease('outbox:alive');
    expect(await owner.tryAcquire()).toBe(true);
    const { store, written } = memoryStore();
    const lost: { replica: string; writtenBefore: number }[] = [];
    const onLost = async (replica: string) => {
      lost.push({ replica, writtenBefore: written.length });
    };
    const survivor = adoption('me', store, 0, onLost);
    expect(await survivor.scan()).toEqual(['dead', 'idle', 'me.single']);
    // The outbox left from running alone belongs to no replica of the cluster.
    expect(lost).toEqual([
      { replica: 'dead', writtenBefore: 0 },
      { replica: 'idle', writtenBefore: 10 },
    ]);
    expect(await survivor.scan()).toEqual([]);
    expect(await adoption('other', store, 0, onLost).scan()).toEqual([]);
    expect(lost).toHaveLength(2);
    await owner.stop();
  });

  it('drains the file even when the dead replica cannot be reported lost', async () => {
    await fillOutbox(join(dir, 'dead.db'), 1, 5);
    const { store, written } = memoryStore();
    const failing = async () => {
      throw new Error('registry unreachable');
    };
    expect(await adoption('me', store, 0, failing).scan()).toEqual(['dead']);
    expect(written).toHaveLength(5);
  });

  it('keeps batches the store refuses aside, out of the next scans', async () => {
    await fillOutbox(join(dir, 'dead.db'), 2, 5);
    const { store } = memoryStore(true);
    expect(await adoption('me', store).scan()).toEqual(['dead']);
    const left = readdirSync(dir);
    expect(left).toHaveLength(1);
    expect(left[0]).toMatch(/^dead\.db\.quarantine-\d+$/);
    expect(await adoption('me', store).scan()).toEqual([]);
  });
});
