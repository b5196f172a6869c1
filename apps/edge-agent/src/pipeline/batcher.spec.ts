import { MAX_MESSAGE_BYTES } from '@outpost/protocol/limits';
import { compressPack, type Reading, resolveSenml, toReadings } from '@outpost/protocol/senml';
import { describe, expect, it } from 'vitest';
import {
  type Batch,
  Batcher,
  batchConfigSchema,
  ENVELOPE_RESERVE_BYTES,
  jsonBudgetForJws,
} from './batcher.js';

const GW = 'gw-hall-1';
const T = 1_767_225_600;

function reading(i: number, extra: Partial<Reading> = {}): Reading {
  return {
    deviceId: `boiler-${i % 3}`,
    metric: i % 2 === 0 ? 'temperature' : 'pressure',
    time: T + i * 0.25,
    value: 20 + (i % 7) * 0.137,
    unit: i % 2 === 0 ? 'Cel' : 'hPa',
    backfilled: false,
    clock: 'synced',
    ...extra,
  };
}

const many = (n: number, from = 0) => Array.from({ length: n }, (_, i) => reading(from + i));

/** The JSON payload the core will sign, with a realistic envelope. */
function payloadBytes(batch: Batch): number {
  const records = compressPack(batch.readings, GW);
  const envelope = { v: 1, boot: '3f9c0a1e5b7d9f11', seq: [9_999_000_000, 9_999_004_999], records };
  return new TextEncoder().encode(JSON.stringify(envelope)).length;
}

describe('batchConfigSchema', () => {
  it('has the documented defaults', () => {
    expect(batchConfigSchema.parse(undefined)).toEqual({
      maxRecords: 500,
      maxAge: 2_000,
      maxBytes: 180 * 1024,
    });
    expect(
      batchConfigSchema.parse({ maxRecords: 5000, maxAge: '500ms', maxBytes: '64KiB' }),
    ).toEqual({
      maxRecords: 5000,
      maxAge: 500,
      maxBytes: 65_536,
    });
  });

  it.each([
    [{ maxRecords: 5001 }, 'more records than PROTOCOL.md §5 allows'],
    [{ maxRecords: 0 }, 'no records'],
    [{ maxBytes: '256KiB' }, 'a budget whose JWS would exceed 256 KiB'],
    [{ maxBytes: '1KiB' }, 'a tiny budget'],
    [{ maxBytes: 'lots' }, 'an unreadable size'],
    [{ maxAge: 'soon' }, 'an unreadable age'],
  ])('refuses %j (%s)', (config, _why) => {
    expect(batchConfigSchema.safeParse(config).success).toBe(false);
  });

  it('keeps the default budget inside the message limit once signed', () => {
    expect(jsonBudgetForJws(MAX_MESSAGE_BYTES)).toBeGreaterThan(180 * 1024);
    expect(Math.ceil((180 * 1024 * 4) / 3) + 1024).toBeLessThan(MAX_MESSAGE_BYTES);
  });
});

describe('Batcher', () => {
  const config = (extra: object = {}) => batchConfigSchema.parse(extra);

  it('cuts by record count', () => {
    const b = new Batcher(config({ maxRecords: 100 }), { publisherId: GW });
    const batches = b.add(many(250), 0);
    expect(batches.map((x) => [x.readings.length, x.cut])).toEqual([
      [100, 'records'],
      [100, 'records'],
    ]);
    expect(b.pending).toBe(50);
    expect(b.flush().map((x) => [x.readings.length, x.cut])).toEqual([[50, 'flush']]);
    expect(b.flush()).toEqual([]);
  });

  it('cuts by age from the first reading, on tick or on the next add', () => {
    const b = new Batcher(config({ maxAge: '2s' }));
    expect(b.nextDueAt()).toBeUndefined();
    b.add([reading(0)], 1_000);
    b.add([reading(1)], 2_500);
    expect(b.nextDueAt()).toBe(3_000);
    expect(b.tick(2_999)).toEqual([]);
    const [batch] = b.tick(3_000);
    expect(batch).toMatchObject({ cut: 'age', openedAt: 1_000 });
    expect(batch!.readings).toHaveLength(2);
    b.add([reading(2)], 4_000);
    const late = b.add([reading(3)], 10_000); // the tick came late: cut before adding
    expect(late.map((x) => [x.readings.length, x.cut])).toEqual([[1, 'age']]);
    expect(b.pending).toBe(1);
  });

  it('cuts by bytes before a batch would outgrow the budget', () => {
    const b = new Batcher(config({ maxRecords: 5000, maxBytes: '8KiB' }), { publisherId: GW });
    const batches = b.add(many(1000), 0);
    expect(batches.length).toBeGreaterThan(5);
    for (const batch of batches) {
      expect(batch.cut).toBe('bytes');
      expect(batch.bytes).toBeLessThanOrEqual(8 * 1024);
      expect(payloadBytes(batch)).toBeLessThanOrEqual(8 * 1024);
    }
    const total = batches.reduce((n, x) => n + x.readings.length, 0) + b.pending;
    expect(total).toBe(1000);
  });

  it('keeps a realistic 5,000-record burst inside the 256 KiB message limit', () => {
    const b = new Batcher(config({ maxRecords: 5000 }), { publisherId: GW });
    const batches = [...b.add(many(5000), 0), ...b.flush()];
    expect(batches.length).toBeGreaterThan(1); // ~300 KB of JSON does not fit one batch
    for (const batch of batches) {
      const signed = Math.ceil((payloadBytes(batch) * 4) / 3) + 400; // base64url + header + signature
      expect(signed).toBeLessThan(MAX_MESSAGE_BYTES);
    }
  });

  it('counts exactly the bytes compressPack writes (plus the envelope reserve)', () => {
    const mixed: Reading[] = [
      reading(0),
      reading(1, { deviceId: GW }),
      reading(2, { value: true, unit: undefined, clock: undefined }),
      reading(3, { value: 'running "hot" ✓', backfilled: true, clock: 'unsynced' }),
      reading(4, { time: T + 0.1 }),
      reading(5, { time: T + 0.3 }),
      reading(6, { time: T - 1e-7 }),
      reading(7, { value: -1.5e-300 }),
      reading(8, { unit: 'µg/m3' }),
    ];
    const b = new Batcher(config(), { publisherId: GW });
    b.add(mixed, 0);
    const [batch] = b.flush();
    const json = new TextEncoder().encode(JSON.stringify(compressPack(mixed, GW))).length;
    expect(batch!.bytes).toBe(json - 2 + ENVELOPE_RESERVE_BYTES); // the reserve holds the `[]`
    // and the pack still round-trips
    expect(
      toReadings(resolveSenml(compressPack(batch!.readings, GW), { now: T }), GW),
    ).toHaveLength(mixed.length);
  });

  it('a clock going backwards cuts the open batch at once', () => {
    const b = new Batcher(config());
    b.add([reading(0)], 10_000);
    expect(b.tick(5_000).map((x) => x.cut)).toEqual(['clock']);
    b.add([reading(1)], 20_000);
    expect(b.add([reading(2)], 1_000).map((x) => x.cut)).toEqual(['clock']);
    expect(b.pending).toBe(1);
    expect(b.nextDueAt()).toBe(3_000);
  });

  it('a clock jumping forward cuts once, by age', () => {
    const b = new Batcher(config());
    b.add([reading(0)], 0);
    expect(b.tick(86_400_000).map((x) => x.cut)).toEqual(['age']);
    expect(b.tick(2 * 86_400_000)).toEqual([]);
  });

  it('keeps order across batches', () => {
    const b = new Batcher(config({ maxRecords: 7 }));
    const input = many(50);
    const out = [...b.add(input, 0), ...b.flush()].flatMap((x) => x.readings);
    expect(out).toEqual(input);
  });

  describe('isolated devices', () => {
    const devicesOf = (batch: Batch) => [...new Set(batch.readings.map((r) => r.deviceId))];

    it('keeps the readings of an isolated device in batches of its own, cut by the same rules', () => {
      const isolated = new Set(['boiler-1']);
      const b = new Batcher(config({ maxRecords: 10, maxAge: '2s' }), {
        publisherId: GW,
        isolated: (id) => isolated.has(id),
      });
      // boiler-0, boiler-1, boiler-2 in turn: 15 readings of each.
      const input = many(45);
      const batches = [...b.add(input, 0), ...b.tick(2_000)];
      for (const batch of batches) {
        const devices = devicesOf(batch);
        if (devices.includes('boiler-1')) expect(devices).toEqual(['boiler-1']);
      }
      expect(batches.map((x) => [devicesOf(x).join('+'), x.readings.length, x.cut])).toEqual([
        ['boiler-0+boiler-2', 10, 'records'],
        ['boiler-1', 10, 'records'],
        ['boiler-0+boiler-2', 10, 'records'],
        ['boiler-0+boiler-2', 10, 'records'],
        ['boiler-1', 5, 'age'],
      ]);
      expect(batches.map((x) => x.device)).toEqual([
        undefined,
        'boiler-1',
        undefined,
        undefined,
        'boiler-1',
      ]);
      expect(b.pending).toBe(0);
      // Each device's readings keep their order.
      for (const device of ['boiler-0', 'boiler-1', 'boiler-2']) {
        expect(batches.flatMap((x) => x.readings).filter((r) => r.deviceId === device)).toEqual(
          input.filter((r) => r.deviceId === device),
        );
      }
    });

    it('ages each open batch from its own first reading, and flushes them all', () => {
      const b = new Batcher(config({ maxAge: '2s' }), { isolated: (id) => id === 'boiler-1' });
      b.add([reading(0)], 1_000); // boiler-0, shared
      b.add([reading(1)], 1_500); // boiler-1, apart
      expect(b.pending).toBe(2);
      expect(b.nextDueAt()).toBe(3_000);
      expect(b.tick(3_000).map((x) => devicesOf(x))).toEqual([['boiler-0']]);
      expect(b.nextDueAt()).toBe(3_500);
      b.add([reading(3)], 3_200); // boiler-0 again
      expect(b.flush().map((x) => [devicesOf(x), x.cut])).toEqual([
        [['boiler-0'], 'flush'],
        [['boiler-1'], 'flush'],
      ]);
      expect(b.pending).toBe(0);
      expect(b.nextDueAt()).toBeUndefined();
    });

    it('counts the bytes of an isolated batch on its own', () => {
      const b = new Batcher(config({ maxRecords: 5000, maxBytes: '8KiB' }), {
        publisherId: GW,
        isolated: (id) => id === 'boiler-1',
      });
      const batches = [...b.add(many(1500), 0), ...b.flush()];
      for (const batch of batches) {
        expect(batch.bytes).toBeLessThanOrEqual(8 * 1024);
        expect(payloadBytes(batch)).toBeLessThanOrEqual(8 * 1024);
        const json = new TextEncoder().encode(JSON.stringify(compressPack(batch.readings, GW)));
        expect(batch.bytes).toBe(json.length - 2 + ENVELOPE_RESERVE_BYTES);
      }
      expect(batches.filter((x) => devicesOf(x).includes('boiler-1')).length).toBeGreaterThan(1);
    });

    it('follows the isolated set as it changes: a released device joins the shared batch again', () => {
      const isolated = new Set<string>();
      const b = new Batcher(config({ maxAge: '1s' }), { isolated: (id) => isolated.has(id) });
      b.add([reading(0), reading(1)], 0);
      isolated.add('boiler-1');
      b.add([reading(4)], 100); // boiler-1: apart from now on
      const first = b.tick(1_100);
      expect(first.map((x) => devicesOf(x))).toEqual([['boiler-0', 'boiler-1'], ['boiler-1']]);
      isolated.delete('boiler-1');
      b.add([reading(6), reading(7)], 2_000);
      expect(b.flush().map((x) => devicesOf(x))).toEqual([['boiler-0', 'boiler-1']]);
    });
  });
});
