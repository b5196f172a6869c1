import { describe, expect, it } from 'vitest';
import { type DeviceStats, summarize } from './device.js';

function stats(id: string, sent: Record<string, number>, extra: Partial<DeviceStats> = {}) {
  const readings = Math.max(0, ...Object.values(sent));
  return {
    id,
    transport: 'serial',
    hardware: 'hw',
    serial: id.toUpperCase(),
    version: '1.0.0',
    sent,
    readings,
    garbageLines: 0,
    badCrcLines: 0,
    partialLines: 0,
    skipped: 0,
    writeErrors: 0,
    opens: 1,
    connected: true,
    clockSkewMs: 0,
    firmware: { begins: 0, chunksOk: 0, errors: 0, updates: 0, reverts: 0, lastError: undefined },
    ...extra,
  } satisfies DeviceStats;
}

describe('summarize', () => {
  it('keys devices by id and adds up counters per metric over the fleet', () => {
    const fleet = summarize('room', 1500, [
      stats('a', { t: 10, h: 10 }, { garbageLines: 2, skipped: 1 }),
      stats('b', { t: 7, p: 7 }, { badCrcLines: 3, partialLines: 1 }),
    ]);
    expect(fleet.scenario).toBe('room');
    expect(fleet.elapsedMs).toBe(1500);
    expect(Object.keys(fleet.devices)).toEqual(['a', 'b']);
    expect(fleet.totals).toEqual({
      sent: { t: 17, h: 10, p: 7 },
      readings: 17,
      garbageLines: 2,
      badCrcLines: 3,
      partialLines: 1,
      skipped: 1,
    });
  });
});
