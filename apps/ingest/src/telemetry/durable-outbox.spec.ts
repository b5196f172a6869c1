import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fakeClock } from '@outpost/test-kit/clock';
import { waitFor } from '@outpost/test-kit/process';
import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  DurableOutbox,
  type DurableOutboxOptions,
  decodePoints,
  encodePoints,
  OutboxFull,
} from './durable-outbox.js';
import type { TelemetryPoint } from './telemetry-store.js';

// Real: SQLite files in a temporary directory (WAL, fsync). Mocked: the clock.
const dir = mkdtempSync(join(tmpdir(), 'outpost-outbox-'));
let n = 0;
const open: DurableOutbox[] = [];

afterEach(async () => {
  await Promise.all(open.splice(0).map((o) => o.close()));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function outbox(options: Partial<DurableOutboxOptions> = {}): DurableOutbox {
  const o = new DurableOutbox({ path: join(dir, `outbox-${++n}.db`), ...options });
  open.push(o);
  return o;
}

const T0 = 1_700_000_000_000;
const site = { site: 'north', line: 'a "b", c=d' };
function points(count: number, device = 'dev-1', t = T0): TelemetryPoint[] {
  return Array.from({ length: count }, (_, i) => ({
    device,
    metric: i % 2 === 0 ? 'temp' : 'hum',
    timeMs: t + i,
    value: i % 2 === 0 ? 20 + i / 4 : 40 + i,
    unit: i % 2 === 0 ? 'Cel' : '%RH',
    tags: site,
  }));
}

describe('DurableOutbox', () => {
  it('answers a commit only once the WAL is on disk, and a failed sync is no acknowledgement', async () => {
    // The fdatasync of the WAL is held here: real otherwise.
    const held: ((err: NodeJS.ErrnoException | null) => void)[] = [];
    const o = outbox({ fdatasync: (_fd, done) => held.push(done) });
    let answer: string | undefined;
    const first = o.accept({ publisher: 'gw-1', boot: 'b1', seq: [0, 9], points: points(10) });
    void first.then((a) => {
      answer = a;
    });
    await waitFor(() => held.length === 1, { intervalMs: 5, timeoutMs: 5_000 });
    // Committed (the writer may drain it) but not yet acknowledged.
    expect(o.stats().pendingBatches).toBe(1);
    await new Promise((r) => setTimeout(r, 20));
    expect(answer).toBeUndefined();
    // A commit made while a sync runs waits for the next one.
    const second = o.accept({ publisher: 'gw-1', boot: 'b1', seq: [10, 19], points: points(10) });
    await new Promise((r) => setTimeout(r, 20));
    expect(held).toHaveLength(1);
    held.shift()!(null);
    expect(await first).toBe('accepted');
    await waitFor(() => held.length === 1, { intervalMs: 5, timeoutMs: 5_000 });
    held.shift()!(Object.assign(new Error('EIO: i/o error'), { code: 'EIO' }));
    await expect(second).rejects.toMatchObject({ kind: 'unavailable', code: 'outbox_unavailable' });
    // The device sends it again: the commit is there, so it is a duplicate, once on disk.
    const again = o.accept({ publisher: 'gw-1', boot: 'b1', seq: [10, 19], points: points(10) });
    await waitFor(() => held.length === 1, { intervalMs: 5, timeoutMs: 5_000 });
    held.shift()!(null);
    expect(await again).toBe('duplicate');
    expect(o.stats().pendingBatches).toBe(2);
  });

  it('resolves accept only once the batch is committed and visible to another connection', async () => {
    const path = join(dir, 'visible.db');
    const o = new DurableOutbox({ path });
    open.push(o);
    expect(await o.accept({ publisher: 'gw-1', boot: 'b1', seq: [0, 9], points: points(10) })).toBe(
      'accepted',
    );
    const reader = new Database(path, { readonly: true });
    try {
      const row = reader.prepare('SELECT publisher, points FROM batches').get();
      expect(row).toEqual({ publisher: 'gw-1', points: 10 });
    } finally {
      reader.close();
    }
  });

  it('gives back exactly the points it was given, in acceptance order', async () => {
    const o = outbox();
    const mixed: TelemetryPoint[] = [
      { device: 'gw-1', metric: 'door', timeMs: T0, value: 'open', tags: {} },
      { device: 'child-1', metric: 'armed', timeMs: T0 + 5, value: false, tags: { a: '1' } },
      {
        device: 'child-1',
        metric: 'temp',
        timeMs: T0 - 7,
        value: -3.5,
        unit: 'Cel',
        tags: { a: '1' },
      },
      {
        device: 'child-1',
        metric: 'temp',
        timeMs: T0 - 6,
        value: 1e300,
        unit: '',
        tags: { a: '2' },
      },
      {
        device: 'gw-1',
        metric: 'v',
        timeMs: T0,
        value: 3,
        backfilled: true,
        unsynced: true,
        tags: {},
      },
    ];
    await o.accept({ publisher: 'gw-1', points: mixed });
    await o.accept({ publisher: 'gw-2', boot: 'x', seq: [5, 9], points: points(5) });
    const [first, second] = await o.peek(1_000);
    expect(first).toMatchObject({ publisher: 'gw-1', points: mixed });
    expect(first).not.toHaveProperty('boot');
    expect(second).toMatchObject({ publisher: 'gw-2', boot: 'x', seq: [5, 9], points: points(5) });
    expect(second!.id).toBeGreaterThan(first!.id);
  });

  it('group-commits concurrent accepts: one commit for many batches', async () => {
    const o = outbox({ groupCommitMs: 5 });
    let commits = 0;
    o.onAccepted(() => commits++);
    const outcomes = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        o.accept({ publisher: `d${i}`, boot: 'b', seq: [0, 9], points: points(10, `d${i}`) }),
      ),
    );
    expect(outcomes.every((x) => x === 'accepted')).toBe(true);
    expect(commits).toBe(1);
    expect(o.stats()).toMatchObject({ pendingBatches: 200, pendingPoints: 2_000 });
  });

  it('commits at once when groupCommitMaxPoints are queued, not before', async () => {
    const o = outbox({ groupCommitMs: 60_000, groupCommitMaxPoints: 500 });
    // Within `ms`, far below the 60 s group window.
    const settled = (p: Promise<unknown>, ms: number) =>
      Promise.race([p.then(() => true), new Promise((r) => setTimeout(() => r(false), ms))]);
    const four = Array.from({ length: 4 }, (_, i) =>
      o.accept({ publisher: `a${i}`, points: points(100) }),
    );
    expect(await settled(Promise.all(four), 50)).toBe(false);
    const fifth = o.accept({ publisher: 'a4', points: points(100) });
    expect(await settled(Promise.all([...four, fifth]), 5_000)).toBe(true);
    expect(o.stats().pendingBatches).toBe(5);
  });

  it('answers duplicate for a (publisher, boot, seq) seen before, even in the same commit', async () => {
    const o = outbox();
    const batch = {
      publisher: 'gw-1',
      boot: 'b1',
      seq: [0, 9] as [number, number],
      points: points(10),
    };
    expect(await Promise.all([o.accept(batch), o.accept(batch)])).toEqual([
      'accepted',
      'duplicate',
    ]);
    expect(await o.accept(batch)).toBe('duplicate');
    // Another publisher, another boot, no boot/seq at all: not duplicates.
    expect(await o.accept({ ...batch, publisher: 'gw-2' })).toBe('accepted');
    expect(await o.accept({ ...batch, boot: 'b2' })).toBe('accepted');
    const { boot: _b, seq: _s, ...bare } = batch;
    expect(await Promise.all([o.accept(bare), o.accept(bare)])).toEqual(['accepted', 'accepted']);
    expect(o.stats().pendingBatches).toBe(5);
  });

  it('treats a batch whose records were all seen as a duplicate, a partly new one as new', async () => {
    const o = outbox();
    const at = (from: number, to: number) =>
      o.accept({ publisher: 'gw-1', boot: 'b', seq: [from, to], points: points(to - from + 1) });
    expect(await at(0, 9)).toBe('accepted');
    expect(await at(20, 29)).toBe('accepted');
    expect(await at(10, 19)).toBe('accepted');
    expect(await at(5, 25)).toBe('duplicate'); // 0..29 is one range now
    expect(await at(3, 3)).toBe('duplicate');
    expect(await at(25, 35)).toBe('accepted');
    expect(await at(30, 35)).toBe('duplicate');
    expect(await at(40, 40)).toBe('accepted');
    expect(await at(36, 39)).toBe('accepted');
    expect(await at(0, 40)).toBe('duplicate');
  });

  it('still answers duplicate after the batch was drained, and after a reopen', async () => {
    const path = join(dir, 'drained.db');
    const batch = {
      publisher: 'gw-1',
      boot: 'b1',
      seq: [100, 199] as [number, number],
      points: points(100),
    };
    const first = new DurableOutbox({ path });
    expect(await first.accept(batch)).toBe('accepted');
    await first.remove((await first.peek(1_000)).map((b) => b.id));
    expect(first.stats().pendingBatches).toBe(0);
    expect(await first.accept(batch)).toBe('duplicate');
    await first.close();
    const second = new DurableOutbox({ path });
    open.push(second);
    expect(await second.accept(batch)).toBe('duplicate');
    expect(second.stats().pendingBatches).toBe(0);
  });

  it('forgets seq ranges after the retention, with the injected clock', async () => {
    const clock = fakeClock(T0);
    const o = outbox({ clock, dedupRetentionMs: 7 * 86_400_000 });
    const batch = {
      publisher: 'gw-1',
      boot: 'b1',
      seq: [0, 9] as [number, number],
      points: points(10),
    };
    await o.accept(batch);
    clock.advance(6 * 86_400_000);
    expect(await o.accept(batch)).toBe('duplicate');
    clock.advance(86_400_000 + 1);
    // The next commit prunes (at most once a minute).
    await o.accept({ publisher: 'other', points: points(1) });
    expect(await o.accept(batch)).toBe('accepted');
  });

  it('keeps pending batches and counts across close and reopen', async () => {
    const path = join(dir, 'reopen.db');
    const clock = fakeClock(T0);
    const first = new DurableOutbox({ path, clock });
    await first.accept({ publisher: 'a', points: points(10) });
    clock.advance(1_000);
    await first.accept({ publisher: 'b', points: points(20) });
    const [q] = await first.peek(10);
    await first.quarantine(q!.id, 'refused');
    await first.close();
    await first.close();
    const second = new DurableOutbox({ path, clock });
    open.push(second);
    expect(second.stats()).toEqual({
      pendingBatches: 1,
      pendingPoints: 20,
      oldestMs: T0 + 1_000,
      quarantinedBatches: 1,
      quarantinedPoints: 10,
    });
    expect((await second.peek(100)).map((b) => b.publisher)).toEqual(['b']);
  });

  it('commits queued accepts on close, then refuses new ones', async () => {
    const path = join(dir, 'close.db');
    const o = new DurableOutbox({ path, groupCommitMs: 60_000 });
    const pending = o.accept({ publisher: 'a', points: points(3) });
    await o.close();
    expect(await pending).toBe('accepted');
    await expect(o.accept({ publisher: 'a', points: points(3) })).rejects.toMatchObject({
      kind: 'unavailable',
      code: 'outbox_closed',
    });
    const again = new DurableOutbox({ path });
    open.push(again);
    expect(again.stats().pendingPoints).toBe(3);
  });

  it('peeks up to maxPoints, but always at least one batch', async () => {
    const o = outbox();
    for (let i = 0; i < 5; i++) await o.accept({ publisher: `p${i}`, points: points(100) });
    expect((await o.peek(250)).map((b) => b.publisher)).toEqual(['p0', 'p1']);
    expect((await o.peek(50)).map((b) => b.publisher)).toEqual(['p0']);
    expect(await o.peek(10_000)).toHaveLength(5);
  });

  it('refuses with outbox_full beyond the backlog bound, still acking replays', async () => {
    const o = outbox({ maxBacklogPoints: 250 });
    const batch = (i: number) => ({
      publisher: 'gw-1',
      boot: 'b',
      seq: [i * 100, i * 100 + 99] as [number, number],
      points: points(100),
    });
    expect(await o.accept(batch(0))).toBe('accepted');
    expect(await o.accept(batch(1))).toBe('accepted');
    const err = await o.accept(batch(2)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OutboxFull);
    expect(err).toMatchObject({ kind: 'unavailable', code: 'outbox_full' });
    expect(await o.accept(batch(0))).toBe('duplicate');
    expect(o.stats().pendingPoints).toBe(200);
    await o.remove([(await o.peek(1))[0]!.id]);
    expect(await o.accept(batch(2))).toBe('accepted');
  });

  it('quarantines a batch with its reason, lists it, and can put it back in line', async () => {
    const clock = fakeClock(T0);
    const o = outbox({ clock });
    await o.accept({ publisher: 'gw-1', boot: 'b', seq: [0, 4], points: points(5) });
    await o.accept({ publisher: 'gw-2', points: points(7) });
    const [bad] = await o.peek(1);
    clock.advance(60_000);
    await o.quarantine(bad!.id, 'write answered 400: field type conflict');
    expect(o.stats()).toEqual({
      pendingBatches: 1,
      pendingPoints: 7,
      oldestMs: T0,
      quarantinedBatches: 1,
      quarantinedPoints: 5,
    });
    expect(await o.listQuarantine(10)).toEqual([
      {
        id: bad!.id,
        publisher: 'gw-1',
        boot: 'b',
        seq: [0, 4],
        acceptedMs: T0,
        quarantinedMs: T0 + 60_000,
        points: 5,
        reason: 'write answered 400: field type conflict',
      },
    ]);
    expect((await o.peek(100)).map((b) => b.publisher)).toEqual(['gw-2']);
    await o.quarantine(bad!.id, 'again'); // already moved: nothing happens
    expect(o.stats().quarantinedBatches).toBe(1);

    let woken = 0;
    o.onAccepted(() => woken++);
    expect(await o.requeue(bad!.id)).toBe(true);
    expect(await o.requeue(bad!.id)).toBe(false);
    expect(woken).toBe(1);
    expect(o.stats()).toMatchObject({
      pendingBatches: 2,
      pendingPoints: 12,
      quarantinedBatches: 0,
    });
    const requeued = (await o.peek(100)).at(-1)!;
    expect(requeued).toMatchObject({ publisher: 'gw-1', seq: [0, 4], points: points(5) });
  });

  it('forgets a removed batch at once and deletes it on disk with the next commit', async () => {
    const path = join(dir, 'lazy-delete.db');
    // Each accept commits at once; a delete alone would wait a minute.
    const o = new DurableOutbox({ path, groupCommitMs: 60_000, groupCommitMaxPoints: 1 });
    open.push(o);
    const onDisk = () => {
      const reader = new Database(path, { readonly: true });
      try {
        return reader.prepare('SELECT publisher FROM batches ORDER BY id').pluck().all();
      } finally {
        reader.close();
      }
    };
    await o.accept({ publisher: 'a', points: points(3) });
    const [batch] = await o.peek(100);
    await o.remove([batch!.id]);
    // Gone for the writer and the gauges, still on disk: no commit of its own.
    expect(await o.peek(100)).toEqual([]);
    expect(o.stats()).toMatchObject({ pendingBatches: 0, pendingPoints: 0, oldestMs: null });
    expect(onDisk()).toEqual(['a']);
    await o.remove([batch!.id]); // twice: counted once
    expect(o.stats().pendingBatches).toBe(0);
    // The next commit carries the delete.
    await o.accept({ publisher: 'b', points: points(2) });
    expect(onDisk()).toEqual(['b']);
    await o.remove((await o.peek(100)).map((b) => b.id));
    await o.close(); // so does close
    expect(onDisk()).toEqual([]);
  });

  it('commits a delete on its own when no accept comes', async () => {
    const path = join(dir, 'delete-alone.db');
    const o = new DurableOutbox({ path, groupCommitMs: 1 });
    open.push(o);
    await o.accept({ publisher: 'a', points: points(3) });
    await o.remove((await o.peek(100)).map((b) => b.id));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const reader = new Database(path, { readonly: true });
    try {
      expect(reader.prepare('SELECT COUNT(*) AS n FROM batches').get()).toEqual({ n: 0 });
    } finally {
      reader.close();
    }
  });

  it('peeks past the batches it is told to skip', async () => {
    const o = outbox();
    for (let i = 0; i < 4; i++) await o.accept({ publisher: `p${i}`, points: points(100) });
    const first = await o.peek(200);
    expect(first.map((b) => b.publisher)).toEqual(['p0', 'p1']);
    const skip = new Set(first.map((b) => b.id));
    expect((await o.peek(200, skip)).map((b) => b.publisher)).toEqual(['p2', 'p3']);
    await o.remove([first[1]!.id]);
    expect((await o.peek(1_000, new Set([first[0]!.id]))).map((b) => b.publisher)).toEqual([
      'p2',
      'p3',
    ]);
  });

  it('serves accepted points from memory up to maxCachedPoints, the rest from the file', async () => {
    const path = join(dir, 'cache.db');
    const o = new DurableOutbox({ path, maxCachedPoints: 150 });
    open.push(o);
    const sent = [points(100, 'd0'), points(100, 'd1')];
    for (const [i, p] of sent.entries()) await o.accept({ publisher: `p${i}`, points: p });
    const [cached, decoded] = await o.peek(1_000);
    expect(cached!.points).toBe(sent[0]); // kept as handed over
    expect(decoded!.points).not.toBe(sent[1]); // over the bound: read back from disk
    expect(decoded!.points).toEqual(sent[1]);
    await o.close();
    const reopened = new DurableOutbox({ path });
    open.push(reopened);
    expect((await reopened.peek(1_000)).map((b) => b.points)).toEqual(sent);
  });

  it('refuses points no store could write, storing nothing', async () => {
    const o = outbox();
    for (const bad of [
      { ...points(1)[0]!, value: Number.NaN },
      { ...points(1)[0]!, timeMs: T0 + 0.5 },
    ]) {
      await expect(o.accept({ publisher: 'a', points: [...points(3), bad] })).rejects.toMatchObject(
        {
          kind: 'invalid',
          code: 'invalid_point',
        },
      );
    }
    expect(o.stats().pendingBatches).toBe(0);
  });

  it('records an empty batch as seen without queueing anything', async () => {
    const o = outbox();
    const empty = { publisher: 'a', boot: 'b', seq: [0, 0] as [number, number], points: [] };
    expect(await o.accept(empty)).toBe('accepted');
    expect(await o.accept(empty)).toBe('duplicate');
    expect(o.stats()).toMatchObject({ pendingBatches: 0, oldestMs: null });
  });
});

describe('outbox encoding', () => {
  it('round-trips points and is several times smaller than plain JSON', () => {
    const batch = points(100);
    const body = encodePoints(batch);
    expect(decodePoints(body)).toEqual(batch);
    expect(body.length * 3).toBeLessThan(JSON.stringify(batch).length);
  });

  it('shares one tags object per device in what it decodes', () => {
    const [a, b] = decodePoints(encodePoints(points(2)));
    expect(a!.tags).toBe(b!.tags);
  });
});
