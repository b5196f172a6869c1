import { describe, expect, it } from 'vitest';
import { decodeBatch, foreignDevices, TelemetryRejected, toPoints } from './normalize-batch.js';

const gw = { deviceId: 'gw-1', children: new Set(['th-1']) };
const NOW = 1_800_000_000;

describe('decodeBatch', () => {
  it('resolves a signed batch payload into readings about the gateway and its children', () => {
    const decoded = decodeBatch(
      {
        v: 1,
        boot: '3f9c0a1e',
        seq: [10, 12],
        records: [
          { bt: 1_700_000_000, n: 'cpu', u: '%', v: 12 },
          { n: 'th-1/temperature', u: 'Cel', v: 21.5, t: 1, bf: true },
          { n: 'th-1/door', vb: true, t: 2, cq: 'unsynced' },
        ],
      },
      true,
      { deviceId: 'gw-1', children: new Set(['th-1']) },
      NOW,
    );
    expect(decoded.boot).toBe('3f9c0a1e');
    expect(decoded.seq).toEqual([10, 12]);
    expect(decoded.readings).toHaveLength(3);
  });

  it.each([
    ['a batch without boot', { v: 1, seq: [1, 1], records: [{ n: 'x', v: 1 }] }, 'schema'],
    [
      'NaN smuggled as a string value where a number is expected',
      { v: 1, boot: 'abcdefgh', seq: [1, 1], records: [{ n: 'x', v: 'NaN' }] },
      'schema',
    ],
    [
      'an unknown SenML field',
      { v: 1, boot: 'abcdefgh', seq: [1, 1], records: [{ n: 'x', v: 1, evil: 1 }] },
      'schema',
    ],
    [
      'too many records',
      {
        v: 1,
        boot: 'abcdefgh',
        seq: [1, 6000],
        records: Array.from({ length: 5001 }, () => ({ n: 'x', v: 1 })),
      },
      'too_many_records',
    ],
  ])('refuses %s with reason %s', (_name, payload, reason) => {
    try {
      decodeBatch(payload, true, gw, NOW);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(TelemetryRejected);
      expect((err as TelemetryRejected).reason).toBe(reason);
    }
  });

  it('accepts a bare SenML pack when told it is unsigned', () => {
    expect(
      decodeBatch(
        [{ n: 'temperature', v: 20, t: 0 }],
        false,
        { deviceId: 'd-1', children: new Set() },
        NOW,
      ).readings,
    ).toEqual([
      expect.objectContaining({ deviceId: 'd-1', metric: 'temperature', time: NOW, value: 20 }),
    ]);
  });
});

describe('foreignDevices and toPoints', () => {
  it('names devices the publisher may not speak for', () => {
    const decoded = decodeBatch(
      [
        { n: 'th-1/t', v: 1 },
        { n: 'th-9/t', v: 1 },
        { n: 't', v: 2 },
      ],
      false,
      gw,
      NOW,
    );
    expect(foreignDevices(decoded.readings, gw)).toEqual(['th-9']);
  });

  it('makes points in ms with tags, unit and flags', () => {
    const decoded = decodeBatch(
      [{ n: 'th-1/t', u: 'Cel', v: 1, t: 1_700_000_000.1234, bf: true, cq: 'unsynced' }],
      false,
      gw,
      NOW,
    );
    expect(toPoints(decoded.readings, (id) => ({ site: id }))).toEqual([
      {
        device: 'th-1',
        metric: 't',
        timeMs: 1_700_000_000_123,
        value: 1,
        unit: 'Cel',
        tags: { site: 'th-1' },
        backfilled: true,
        unsynced: true,
      },
    ]);
  });
});
