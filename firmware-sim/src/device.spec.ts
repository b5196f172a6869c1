import { describe, expect, it } from 'vitest';
import { type DeviceStats, emptyMqttCounters, type MqttCounters, summarize } from './device.js';

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

describe('summarize with MQTT devices', () => {
  function mqtt(acked: number, extra: Partial<MqttCounters> = {}): MqttCounters {
    return {
      ...emptyMqttCounters(),
      madeReadings: acked + 2,
      publishedReadings: acked + 1,
      ackedReadings: acked,
      pendingReadings: 2,
      batches: { published: 3, resent: 1, acked: 2, rejected: 0, pending: 1 },
      connects: 2,
      reconnects: 1,
      commands: { received: 1, invalid: 0, rejected: 1, unmatched: 0, ping: 0, other: 0 },
      ...extra,
    };
  }

  it('adds up MQTT counters field by field and counts connected devices', () => {
    const fleet = summarize('site', 10, [
      stats('s', { t: 4 }),
      stats('a', { v: 10 }, { transport: 'mqtt', mqtt: mqtt(10) }),
      stats(
        'b',
        { v: 5 },
        { transport: 'mqtt', connected: false, mqtt: mqtt(5, { rejectedReadings: 5 }) },
      ),
    ]);
    expect(fleet.totals.sent).toEqual({ t: 4, v: 15 });
    expect(fleet.totals.mqtt).toEqual({
      madeReadings: 19,
      publishedReadings: 17,
      ackedReadings: 15,
      rejectedReadings: 5,
      pendingReadings: 4,
      batches: { published: 6, resent: 2, acked: 4, rejected: 0, pending: 2 },
      connects: 4,
      reconnects: 2,
      connectFailures: 0,
      disconnects: 0,
      renewals: 0,
      ackTimeouts: 0,
      commands: { received: 2, invalid: 0, rejected: 2, unmatched: 0, ping: 0, other: 0 },
      devices: 2,
      connected: 1,
    });
    expect(summarize(undefined, 0, [stats('s', { t: 1 })]).totals.mqtt).toBeUndefined();
  });
});
