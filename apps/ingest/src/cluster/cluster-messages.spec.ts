import { describe, expect, it } from 'vitest';
import {
  chunkReadings,
  decodeEnvelope,
  encodeEnvelope,
  isLiveEvent,
  MAX_CLUSTER_MESSAGE_BYTES,
  MAX_POINTS_PER_MESSAGE,
  RecentIds,
} from './cluster-messages.js';

const raw = (value: unknown) => Buffer.from(JSON.stringify(value), 'utf8');

describe('cluster messages', () => {
  it('round-trips every event kind', () => {
    const events = [
      { type: 'device.revoked', deviceId: 'th-1', at: 1_700_000_000_000 },
      { type: 'device.updated', deviceId: 'th-1', fields: ['desiredConfig'] },
      { type: 'token.revoked', tokenId: '6c9a0f0e-0d1e-4c52-9d6a-1f1e5d0f0a11' },
      {
        type: 'readings',
        publisher: 'gw-1',
        points: [
          { device: 'th-1', metric: 'temp', timeMs: 1000, value: 21.5, unit: 'Cel' },
          { device: 'gw-1', metric: 'door', timeMs: 1000, value: true, backfilled: true },
        ],
      },
      { type: 'status', deviceId: 'th-1', online: false, reason: 'connection_lost', at: 5 },
      {
        type: 'alerts',
        message: { v: 1, id: 'n1', type: 'alert.firing', alert: { device: 'th-1', x: 1 } },
      },
      {
        type: 'rollouts',
        event: { kind: 'device', rolloutId: 'r1', device: { deviceId: 'th-1', state: 'offered' } },
      },
    ] as const;
    for (const [seq, event] of events.entries()) {
      const envelope = { v: 1 as const, origin: 'replica-a', seq, event };
      expect(decodeEnvelope(encodeEnvelope(envelope as never))).toEqual({ ok: true, envelope });
    }
  });

  it('refuses oversized, non-JSON and malformed messages without throwing', () => {
    expect(decodeEnvelope(Buffer.alloc(MAX_CLUSTER_MESSAGE_BYTES + 1, 0x20))).toEqual({
      ok: false,
      reason: 'too_large',
    });
    expect(decodeEnvelope(Buffer.from('{"v":1,'))).toEqual({ ok: false, reason: 'not_json' });
    const base = { v: 1, origin: 'replica-a', seq: 1 };
    const bad = [
      { ...base, v: 2, event: { type: 'token.revoked', tokenId: 't' } },
      { ...base, origin: 'has spaces', event: { type: 'token.revoked', tokenId: 't' } },
      { ...base, seq: -1, event: { type: 'token.revoked', tokenId: 't' } },
      { ...base, event: { type: 'device.revoked', deviceId: 'UPPER', at: 1 } },
      { ...base, event: { type: 'device.revoked', deviceId: '../x', at: 1 } },
      { ...base, event: { type: 'shutdown.everything' } },
      { ...base, event: { type: 'device.updated', deviceId: 'a', fields: Array(33).fill('f') } },
      {
        ...base,
        event: {
          type: 'readings',
          publisher: 'gw',
          points: [{ device: 'a', metric: 'bad metric', timeMs: 1, value: 1 }],
        },
      },
      {
        ...base,
        event: {
          type: 'readings',
          publisher: 'gw',
          points: Array(MAX_POINTS_PER_MESSAGE + 1).fill({
            device: 'a',
            metric: 'm',
            timeMs: 1,
            value: 1,
          }),
        },
      },
      { ...base, event: { type: 'alerts', message: { v: 1, id: 'n', type: 't', alert: {} } } },
      { ...base, event: { type: 'rollouts', event: { kind: 'device', rolloutId: 'r' } } },
      null,
      [],
      'device.revoked',
    ];
    for (const message of bad) {
      expect(decodeEnvelope(raw(message)), JSON.stringify(message)?.slice(0, 80)).toEqual({
        ok: false,
        reason: 'invalid',
      });
    }
  });

  it('splits readings so each message stays within its bounds', () => {
    const points = Array.from({ length: MAX_POINTS_PER_MESSAGE * 2 + 5 }, (_, i) => ({
      device: 'gw-1',
      metric: 'level',
      timeMs: i,
      value: 'x'.repeat(100),
    }));
    const chunks = chunkReadings('gw-1', points);
    expect(chunks.map((c) => c.points.length)).toEqual([
      MAX_POINTS_PER_MESSAGE,
      MAX_POINTS_PER_MESSAGE,
      5,
    ]);
    for (const [seq, event] of chunks.entries()) {
      const encoded = encodeEnvelope({ v: 1, origin: 'a', seq, event });
      expect(encoded.length).toBeLessThan(MAX_CLUSTER_MESSAGE_BYTES);
      expect(decodeEnvelope(encoded).ok).toBe(true);
    }
    expect(chunkReadings('gw-1', [])).toEqual([]);
  });

  it('tells live events from registry events', () => {
    expect(isLiveEvent({ type: 'status', deviceId: 'a', online: true, reason: null, at: 1 })).toBe(
      true,
    );
    expect(isLiveEvent({ type: 'device.revoked', deviceId: 'a', at: 1 })).toBe(false);
  });
});

describe('RecentIds', () => {
  it('accepts an id once, and forgets the oldest beyond its capacity', () => {
    const recent = new RecentIds(3);
    expect(recent.add('a', 1)).toBe(true);
    expect(recent.add('a', 1)).toBe(false);
    expect(recent.add('b', 1)).toBe(true);
    recent.add('a', 2);
    recent.add('a', 3);
    // ('a', 1) was the oldest of four: forgotten, so accepted again.
    expect(recent.add('a', 1)).toBe(true);
    expect(recent.add('a', 3)).toBe(false);
  });
});
