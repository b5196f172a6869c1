import type { Reading } from '@outpost/protocol/senml';
import { afterEach, describe, expect, it } from 'vitest';
import { decodePack, senmlDownsampler } from './downsample.js';
import type { NewBatch, Outbox, OutboxLimits } from './outbox.js';
import { packReadings } from './pack.js';

/**
 * The contract every Outbox implementation passes (STYLE.md: no fake drifts from the real
 * thing). `make` returns a fresh, empty outbox; `downsample` asks for the SenML downsampler
 * of publisher `gw-1` with 1 min level-1 windows.
 */
export type MakeOutbox = (limits: OutboxLimits, options: { downsample: boolean }) => Outbox;

export const PUBLISHER = 'gw-1';
const T0 = 1_750_000_000;

let seq = 0;

/** A batch of `n` readings of `metric` one second apart from `start`, values from `first`. */
export function batchOf(
  n: number,
  options: { metric?: string; start?: number; first?: number; boot?: string; device?: string } = {},
): NewBatch {
  const readings: Reading[] = [];
  for (let i = 0; i < n; i++) {
    readings.push({
      deviceId: options.device ?? PUBLISHER,
      metric: options.metric ?? 'temperature',
      time: (options.start ?? T0) + i,
      value: (options.first ?? 0) + i,
      unit: 'Cel',
      backfilled: false,
      clock: 'synced',
    });
  }
  const [packed] = packReadings(readings, PUBLISHER);
  const from = seq;
  seq += n;
  return {
    boot: options.boot ?? 'bootbootA',
    seq: [from, from + n - 1],
    createdMs: (options.start ?? T0) * 1000,
    records: n,
    pack: packed!.pack,
  };
}

export function outboxContract(name: string, make: MakeOutbox): void {
  describe(`Outbox contract: ${name}`, () => {
    let outbox: Outbox | undefined;
    const open = (limits: Partial<OutboxLimits> = {}, downsample = false): Outbox => {
      outbox = make(
        { maxBytes: limits.maxBytes ?? 1 << 30, whenFull: limits.whenFull ?? 'drop-oldest' },
        { downsample },
      );
      return outbox;
    };
    afterEach(() => {
      outbox?.close();
      outbox = undefined;
    });

    it('hands out pending batches oldest first, skipping those in flight, until acknowledged', () => {
      const o = open();
      const batches = [batchOf(3), batchOf(2), batchOf(4)];
      const ids = batches.map((b) => {
        const r = o.append(b);
        if (!r.stored) throw new Error('not stored');
        return r.id;
      });
      expect(ids[0]! < ids[1]! && ids[1]! < ids[2]!).toBe(true);
      const first = o.take(2);
      expect(first.map((b) => b.id)).toEqual(ids.slice(0, 2));
      expect(first[0]).toMatchObject({
        boot: batches[0]!.boot,
        seq: batches[0]!.seq,
        records: 3,
        pack: batches[0]!.pack,
        level: 0,
        attempts: 0,
      });
      expect(o.take(5, new Set(ids.slice(0, 2))).map((b) => b.id)).toEqual([ids[2]]);
      o.ack([ids[0]!, 999_999]);
      expect(o.take(5).map((b) => b.id)).toEqual(ids.slice(1));
      const stats = o.stats();
      expect(stats).toMatchObject({ pending: 2, records: 6 });
      expect(stats.bytes).toBe(
        Buffer.byteLength(batches[1]!.pack) + Buffer.byteLength(batches[2]!.pack),
      );
      expect(stats.oldestMs).toBe(batches[1]!.createdMs);
      expect(stats.counters).toMatchObject({ appendedRecords: 9, ackedRecords: 3 });
      o.ack(ids.slice(1));
      expect(o.stats()).toMatchObject({ pending: 0, records: 0, bytes: 0, oldestMs: undefined });
    });

    it('counts every take as an attempt, so a batch handed out is known as possibly sent', () => {
      const o = open();
      o.append(batchOf(1));
      expect(o.take(1)[0]!.attempts).toBe(0);
      expect(o.take(1)[0]!.attempts).toBe(1);
      expect(o.take(0)).toEqual([]);
    });

    it('quarantines a refused batch by (boot, seq) with its reason, and a known copy once acked', () => {
      const o = open();
      const a = batchOf(2);
      const b = batchOf(3);
      o.append(a);
      o.append(b);
      expect(o.quarantine({ boot: a.boot, seq: a.seq }, 'not_child', 'who?', 5_000)).toBe(true);
      expect(o.quarantine({ boot: 'otherboot', seq: a.seq }, 'schema', undefined, 5_000)).toBe(
        false,
      );
      const [taken] = o.take(1);
      expect(taken!.seq).toEqual(b.seq);
      o.ack([taken!.id]);
      // The refusal of an acknowledged batch: only the caller's copy is left.
      expect(o.quarantine(taken!, 'schema', undefined, 6_000)).toBe(false);
      expect(o.quarantine(taken!, 'schema', undefined, 6_000, taken)).toBe(true);
      const q = o.listQuarantine(10);
      expect(q.map((x) => [x.seq, x.reason, x.detail, x.quarantinedMs])).toEqual([
        [b.seq, 'schema', undefined, 6_000],
        [a.seq, 'not_child', 'who?', 5_000],
      ]);
      expect(q[1]!.pack).toBe(a.pack);
      expect(o.stats()).toMatchObject({
        pending: 0,
        quarantined: 2,
        quarantinedRecords: 5,
        counters: { quarantinedRecords: 5, ackedRecords: 3 },
      });
    });

    it('splits a refused pending batch: the good part queued again under new numbers, the rest quarantined', () => {
      const o = open();
      const refused = batchOf(5);
      const next = batchOf(2);
      o.append(refused);
      o.append(next);
      expect(o.find(refused)).toMatchObject({ seq: refused.seq, pack: refused.pack });
      o.take(2);
      const good = batchOf(3, { boot: 'bootbootB', device: 'child-1' });
      const stranger = batchOf(2, { device: 'stranger-1' });
      o.split(
        refused,
        {
          requeue: [{ ...good, createdMs: refused.createdMs }],
          quarantine: {
            createdMs: refused.createdMs,
            records: 2,
            pack: stranger.pack,
            reason: 'not_child',
            detail: 'not a child of gw-1: stranger-1',
          },
        },
        7_000,
      );
      expect(o.find(refused)).toBeUndefined();
      // The good part waits behind what was already pending, never sent under its numbers.
      const pending = o.take(5);
      expect(pending.map((b) => [b.boot, b.seq, b.records, b.attempts])).toEqual([
        [next.boot, next.seq, 2, 1],
        ['bootbootB', good.seq, 3, 0],
      ]);
      expect(pending[1]!.pack).toBe(good.pack);
      expect(pending[1]!.createdMs).toBe(refused.createdMs);
      // Quarantined under the refused batch's numbers, which the ingest's refusal named.
      expect(o.listQuarantine(5)).toMatchObject([
        {
          boot: refused.boot,
          seq: refused.seq,
          records: 2,
          reason: 'not_child',
          detail: 'not a child of gw-1: stranger-1',
          quarantinedMs: 7_000,
          pack: stranger.pack,
          bytes: Buffer.byteLength(stranger.pack),
        },
      ]);
      const stats = o.stats();
      expect(stats).toMatchObject({
        pending: 2,
        records: 5,
        bytes: Buffer.byteLength(next.pack) + Buffer.byteLength(good.pack),
        quarantined: 1,
        quarantinedRecords: 2,
        counters: { appendedRecords: 7, requeuedRecords: 3, quarantinedRecords: 2 },
      });
    });

    it('splits a batch acknowledged before its refusal, and keeps weights and level of what it re-queues', () => {
      const o = open();
      const refused = batchOf(4);
      o.append(refused);
      const [taken] = o.take(1);
      o.ack([taken!.id]);
      const good = { ...batchOf(2, { device: 'child-1' }), level: 1, weights: [3, 5] };
      o.split(
        refused,
        {
          requeue: [good],
          quarantine: {
            createdMs: refused.createdMs,
            records: 2,
            pack: batchOf(2, { device: 'stranger-1' }).pack,
            reason: 'not_child',
            detail: undefined,
          },
        },
        8_000,
      );
      const [again] = o.take(5);
      expect(again).toMatchObject({ seq: good.seq, level: 1, weights: [3, 5], records: 2 });
      expect(again!.bytes).toBe(Buffer.byteLength(good.pack) + '[3,5]'.length);
      expect(o.listQuarantine(5).map((q) => [q.seq, q.records, q.detail])).toEqual([
        [refused.seq, 2, undefined],
      ]);
      expect(o.stats().counters).toMatchObject({
        ackedRecords: 4,
        requeuedRecords: 2,
        quarantinedRecords: 2,
      });
    });

    it('re-queues the good part of a split even when the outbox is full (reject-new)', () => {
      const size = Buffer.byteLength(batchOf(10).pack);
      const o = open({ maxBytes: size + 10, whenFull: 'reject-new' });
      const refused = batchOf(10);
      o.append(refused);
      const [taken] = o.take(1);
      o.ack([taken!.id]);
      o.append(batchOf(10));
      expect(o.append(batchOf(10)).stored).toBe(false);
      const good = batchOf(6, { device: 'child-1' });
      o.split(
        refused,
        {
          requeue: [good],
          quarantine: {
            createdMs: refused.createdMs,
            records: 4,
            pack: batchOf(4, { device: 'stranger-1' }).pack,
            reason: 'not_child',
            detail: undefined,
          },
        },
        9_000,
      );
      expect(o.stats()).toMatchObject({ pending: 2, records: 16 });
      expect(o.take(5).map((b) => b.seq)).toContainEqual(good.seq);
    });

    it('withholds a batch straight into the quarantine, never pending', () => {
      const o = open();
      const pending = batchOf(2);
      o.append(pending);
      const held = batchOf(3, { device: 'stranger-1' });
      o.withhold(held, 'not_child', 'withheld', 4_000);
      expect(o.find(held)).toBeUndefined();
      expect(o.take(5).map((b) => b.seq)).toEqual([pending.seq]);
      expect(o.listQuarantine(5)).toMatchObject([
        {
          boot: held.boot,
          seq: held.seq,
          createdMs: held.createdMs,
          quarantinedMs: 4_000,
          records: 3,
          reason: 'not_child',
          detail: 'withheld',
          pack: held.pack,
        },
      ]);
      expect(o.stats()).toMatchObject({
        pending: 1,
        records: 2,
        quarantined: 1,
        quarantinedRecords: 3,
        counters: { appendedRecords: 2, quarantinedRecords: 3 },
      });
    });

    it('drop-oldest: drops the oldest batches to stay within maxBytes, and counts them', () => {
      const size = Buffer.byteLength(batchOf(10).pack);
      const o = open({ maxBytes: size * 3 + 10, whenFull: 'drop-oldest' });
      const appended = [1, 2, 3, 4, 5].map(() => batchOf(10));
      const outcomes = appended.map((b) => o.append(b));
      expect(outcomes.every((r) => r.stored)).toBe(true);
      expect(outcomes.slice(3).map((r) => r.stored && r.dropped)).toEqual([10, 10]);
      const stats = o.stats();
      expect(stats.bytes).toBeLessThanOrEqual(size * 3 + 10);
      expect(stats).toMatchObject({
        pending: 3,
        records: 30,
        counters: { appendedRecords: 50, droppedRecords: 20, rejectedRecords: 0 },
      });
      expect(o.take(10).map((b) => b.seq)).toEqual(appended.slice(2).map((b) => b.seq));
    });

    it('reject-new: refuses what does not fit, keeps what it has, and counts the refusals', () => {
      const size = Buffer.byteLength(batchOf(10).pack);
      const o = open({ maxBytes: size * 2 + 10, whenFull: 'reject-new' });
      const kept = [batchOf(10), batchOf(10)];
      for (const b of kept) expect(o.append(b).stored).toBe(true);
      expect(o.append(batchOf(10))).toEqual({ stored: false, reason: 'full' });
      expect(o.append(batchOf(7))).toEqual({ stored: false, reason: 'full' });
      expect(o.stats()).toMatchObject({
        pending: 2,
        counters: { appendedRecords: 20, rejectedRecords: 17, droppedRecords: 0 },
      });
      expect(o.take(10).map((b) => b.seq)).toEqual(kept.map((b) => b.seq));
    });

    it.each(['drop-oldest', 'reject-new', 'downsample-oldest'] as const)(
      '%s: refuses a batch larger than the whole outbox',
      (whenFull) => {
        const o = open({ maxBytes: 100, whenFull }, true);
        expect(o.append(batchOf(50))).toEqual({ stored: false, reason: 'too_large' });
        expect(o.stats().counters.rejectedRecords).toBe(50);
      },
    );

    it('downsample-oldest: merges the oldest unsent batches into weighted means instead of dropping', () => {
      // Six batches of 60 readings one second apart: each minute becomes one record.
      const raw = [0, 1, 2, 3, 4, 5].map((k) => batchOf(60, { start: T0 + 60 * k, first: k }));
      const size = Buffer.byteLength(raw[0]!.pack);
      const o = open({ maxBytes: size * 4, whenFull: 'downsample-oldest' }, true);
      for (const b of raw) expect(o.append(b).stored).toBe(true);
      const stats = o.stats();
      expect(stats.bytes).toBeLessThanOrEqual(size * 4);
      expect(stats.counters.droppedRecords).toBe(0);
      expect(stats.counters.downsampledRecords).toBeGreaterThan(0);
      expect(stats.counters.aggregateRecords).toBeLessThan(stats.counters.downsampledRecords);
      const batches = o.take(100);
      const readings = batches.flatMap((b) => decodePack(b.pack, PUBLISHER));
      // Every minute is still there: nothing was dropped, the old ones only got coarser.
      const minutes = new Set(readings.map((r) => Math.floor(r.time / 60)));
      const rawMinutes = raw.flatMap((b) =>
        decodePack(b.pack, PUBLISHER).map((r) => Math.floor(r.time / 60)),
      );
      expect([...minutes].sort()).toEqual([...new Set(rawMinutes)].sort());
      const merged = batches.filter((b) => b.level === 1);
      expect(merged.length).toBeGreaterThan(0);
      for (const b of merged) {
        // Reuses a prefix of the (boot, seq) range of one of the merged inputs.
        const input = raw.find((r) => r.seq[0] === b.seq[0])!;
        expect(b.seq[1]).toBeLessThanOrEqual(input.seq[1]);
        expect(b.seq[1] - b.seq[0] + 1).toBe(b.records);
        expect(b.weights?.reduce((n, w) => n + w, 0)).toBeGreaterThan(b.records);
      }
      // Weighted means keep the sum: what the aggregates stand for adds up to the raw
      // readings that were merged away.
      const stillRaw = new Set(batches.filter((b) => b.level === 0).map((b) => b.seq[0]));
      const mergedAway = raw.filter((r) => !stillRaw.has(r.seq[0]));
      const rawValues = mergedAway.flatMap((r) =>
        decodePack(r.pack, PUBLISHER).map((x) => x.value as number),
      );
      const weighted = merged.flatMap((b) =>
        decodePack(b.pack, PUBLISHER).map((r, i) => [r.value as number, b.weights![i]!] as const),
      );
      expect(weighted.reduce((n, [, w]) => n + w, 0)).toBe(rawValues.length);
      expect(weighted.reduce((n, [v, w]) => n + v * w, 0)).toBeCloseTo(
        rawValues.reduce((n, v) => n + v, 0),
        6,
      );
      expect(stats.counters.downsampledRecords).toBe(rawValues.length);
    });

    it('downsample-oldest: never merges a batch already handed out, and drops when nothing merges', () => {
      const raw = [0, 1, 2].map((k) => batchOf(30, { start: T0 + 30 * k }));
      const size = Buffer.byteLength(raw[0]!.pack);
      const o = open({ maxBytes: size * 3 + 10, whenFull: 'downsample-oldest' }, true);
      for (const b of raw) o.append(b);
      // All three are in flight (maybe stored by the ingest already): merging them could
      // store their minutes twice, so the oldest is dropped instead.
      expect(o.take(3)).toHaveLength(3);
      const r = o.append(batchOf(30, { start: T0 + 90 }));
      expect(r).toMatchObject({ stored: true, dropped: 30, downsampled: 0 });
      expect(o.stats().counters).toMatchObject({ droppedRecords: 30, downsampledRecords: 0 });
    });

    it('downsample-oldest: merges already merged batches again into a coarser level', () => {
      const size = Buffer.byteLength(batchOf(120).pack);
      const o = open({ maxBytes: Math.floor(size * 1.5), whenFull: 'downsample-oldest' }, true);
      // Readings one per 10 s over many hours, two metrics.
      for (let k = 0; k < 40; k++) {
        o.append(batchOf(120, { start: T0 + 1200 * k, metric: k % 2 ? 'a' : 'b' }));
      }
      const levels = new Set(o.take(1000).map((b) => b.level));
      expect(Math.max(...levels)).toBeGreaterThanOrEqual(2);
      expect(o.stats().bytes).toBeLessThanOrEqual(Math.floor(size * 1.5));
    });

    it('applies new limits to the next append', () => {
      const size = Buffer.byteLength(batchOf(10).pack);
      const o = open({ maxBytes: size * 2 + 10, whenFull: 'reject-new' });
      o.append(batchOf(10));
      o.append(batchOf(10));
      expect(o.append(batchOf(10)).stored).toBe(false);
      o.setLimits({ maxBytes: size * 2 + 10, whenFull: 'drop-oldest' });
      expect(o.append(batchOf(10))).toMatchObject({ stored: true, dropped: 10 });
      expect(o.stats()).toMatchObject({ whenFull: 'drop-oldest', maxBytes: size * 2 + 10 });
    });
  });
}

/** The downsampler the contract uses. */
export const contractDownsampler = () =>
  senmlDownsampler(PUBLISHER, { everyMs: 60_000, factor: 10, maxLevel: 3 });
