import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Reading } from '@outpost/protocol/senml';
import { generateKeyPair } from '@outpost/signing/keys';
import { importSigningKey } from '@outpost/signing/sign';
import { afterAll, bench, describe } from 'vitest';
import { senmlDownsampler } from '../src/outbox/downsample.js';
import type { NewBatch } from '../src/outbox/outbox.js';
import { packReadings } from '../src/outbox/pack.js';
import { SqliteOutbox } from '../src/outbox/sqlite-outbox.js';
import { signOutboxBatch } from '../src/uplink/sign-batch.js';

// In process, one core: what the outbox and the signer cost per 500-reading batch, the
// agent's default batch. readings/s = ops/s × 500. Never asserts time. The whole-stack
// numbers (RSS under load, drain of an hour's backlog against a real ingest) come from
// bench/agent-load.ts.

const GW = 'gw-bench';
const dir = mkdtempSync(join(tmpdir(), 'outbox-bench-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function batch(seq: number): NewBatch {
  const readings: Reading[] = Array.from({ length: 500 }, (_, i) => ({
    deviceId: `sim-${(i % 10) + 1}`,
    metric: 't',
    time: 1_760_000_000 + (seq + i) / 100,
    value: Math.round((20 + 5 * Math.sin((seq + i) / 100)) * 100) / 100,
    backfilled: false,
    clock: 'synced',
  }));
  const [packed] = packReadings(readings, GW);
  return {
    boot: 'benchboot1',
    seq: [seq, seq + 499],
    createdMs: Date.now(),
    records: 500,
    pack: packed!.pack,
  };
}

const template = batch(0);
let n = 0;
const next = (): NewBatch => ({
  ...template,
  seq: [n * 500, n * 500 + 499],
  createdMs: Date.now() + n++,
});

const full = new SqliteOutbox({
  path: join(dir, 'full.db'),
  maxBytes: 2 ** 40,
  whenFull: 'drop-oldest',
});
const normal = new SqliteOutbox({
  path: join(dir, 'normal.db'),
  maxBytes: 2 ** 40,
  whenFull: 'drop-oldest',
  synchronous: 'normal',
});
const drained = new SqliteOutbox({
  path: join(dir, 'drain.db'),
  maxBytes: 2 ** 40,
  whenFull: 'drop-oldest',
  synchronous: 'normal',
});
for (let i = 0; i < 2000; i++) drained.append(next());

const key = await importSigningKey((await generateKeyPair()).privateJwk);
const one = drained.take(1)[0]!;

describe('outbox, per 500-reading batch', () => {
  bench('pack 500 readings into SenML (floor)', () => {
    batch(0);
  });
  bench('append, fsync each (sync: full)', () => {
    full.append(next());
  });
  bench('append (sync: normal)', () => {
    normal.append(next());
  });
  bench('a window turned over: take 16, ack 16, append 16', () => {
    const taken = drained.take(16);
    drained.ack(taken.map((b) => b.id));
    for (let i = 0; i < taken.length; i++) drained.append(next());
  });
  bench('sign for sending, with bf: true', async () => {
    await signOutboxBatch(key, one, true);
  });
  bench('downsample 20 batches (10,000 readings) into 1-min means', () => {
    const ds = senmlDownsampler(GW);
    const group = Array.from({ length: 20 }, (_, i) => ({
      ...one,
      id: i + 1,
      seq: [i * 500, i * 500 + 499] as [number, number],
    }));
    ds.merge(group, 1);
  });
});
