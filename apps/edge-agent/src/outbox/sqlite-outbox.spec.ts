import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { batchOf, contractDownsampler, outboxContract } from './outbox.contract.js';
import { SqliteOutbox } from './sqlite-outbox.js';

// Real parts: better-sqlite3 on files in a temporary directory.
const dir = mkdtempSync(join(tmpdir(), 'outbox-spec-'));
let n = 0;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

outboxContract(
  'SqliteOutbox',
  (limits, { downsample }) =>
    new SqliteOutbox({
      path: join(dir, `contract-${++n}.db`),
      ...limits,
      ...(downsample ? { downsampler: contractDownsampler() } : {}),
    }),
);

describe('SqliteOutbox on disk', () => {
  it('keeps pending batches, attempts, quarantine and counters across a reopen', () => {
    const path = join(dir, 'reopen.db');
    const limits = { maxBytes: 1 << 20, whenFull: 'drop-oldest' as const };
    const first = new SqliteOutbox({ path, ...limits });
    const a = batchOf(3);
    const b = batchOf(4);
    const c = batchOf(5);
    for (const x of [a, b, c]) first.append(x);
    const [taken] = first.take(1);
    first.ack([taken!.id]);
    first.take(1);
    first.quarantine(c, 'schema', 'bad', 1000);
    first.close();

    const again = new SqliteOutbox({ path, ...limits });
    expect(again.stats()).toMatchObject({
      pending: 1,
      records: 4,
      quarantined: 1,
      quarantinedRecords: 5,
      counters: { appendedRecords: 12, ackedRecords: 3, quarantinedRecords: 5 },
    });
    const [left] = again.take(5);
    expect(left).toMatchObject({ boot: b.boot, seq: b.seq, pack: b.pack, attempts: 1 });
    expect(again.listQuarantine(5)[0]).toMatchObject({ seq: c.seq, reason: 'schema' });
    again.close();
  });

  it('splits in one transaction: a split that fails part-way leaves the refused batch as it was', () => {
    const path = join(dir, 'split.db');
    const limits = { maxBytes: 1 << 20, whenFull: 'drop-oldest' as const };
    const first = new SqliteOutbox({ path, ...limits });
    const refused = batchOf(6);
    first.append(refused);
    first.take(1);
    const before = first.stats();
    const quarantine = {
      createdMs: refused.createdMs,
      records: 2,
      pack: batchOf(2, { device: 'stranger-1' }).pack,
      reason: 'not_child',
      detail: undefined,
    };
    const good = batchOf(4, { device: 'child-1' });
    // The second re-queued batch cannot be written (no pack): the first, written already
    // inside the transaction, goes with it, and the refused batch stays.
    const broken = { ...batchOf(1), pack: null as unknown as string };
    expect(() => first.split(refused, { requeue: [good, broken], quarantine }, 5_000)).toThrow();
    expect(first.stats()).toEqual(before);
    expect(first.find(refused)).toMatchObject({ seq: refused.seq, attempts: 1 });
    expect(first.listQuarantine(5)).toEqual([]);

    first.split(refused, { requeue: [good], quarantine }, 5_000);
    const after = first.stats();
    first.close();
    // What a restart finds: the parts, and the counters that say what happened.
    const again = new SqliteOutbox({ path, ...limits });
    expect(again.stats()).toEqual(after);
    expect(after).toMatchObject({
      pending: 1,
      records: 4,
      quarantined: 1,
      quarantinedRecords: 2,
      counters: { appendedRecords: 6, requeuedRecords: 4, quarantinedRecords: 2 },
    });
    expect(again.find(refused)).toBeUndefined();
    expect(again.take(5).map((b) => [b.seq, b.pack])).toEqual([[good.seq, good.pack]]);
    expect(again.listQuarantine(5)[0]).toMatchObject({ seq: refused.seq, reason: 'not_child' });
    again.close();
  });

  it('lets a read-only reader see the stats of an outbox another connection writes', () => {
    const path = join(dir, 'shared.db');
    const writer = new SqliteOutbox({ path, maxBytes: 1 << 20, whenFull: 'reject-new' });
    writer.append(batchOf(7));
    const reader = new SqliteOutbox({
      path,
      maxBytes: 1 << 20,
      whenFull: 'reject-new',
      readonly: true,
    });
    expect(reader.stats()).toMatchObject({ pending: 1, records: 7 });
    writer.append(batchOf(2));
    expect(reader.stats()).toMatchObject({ pending: 2, records: 9 });
    expect(() => reader.append(batchOf(1))).toThrow(/read-only/);
    reader.close();
    writer.close();
  });

  it('refuses to open a missing file read-only', () => {
    expect(
      () =>
        new SqliteOutbox({
          path: join(dir, 'missing.db'),
          maxBytes: 1,
          whenFull: 'drop-oldest',
          readonly: true,
        }),
    ).toThrow();
  });
});
